"""Edit requests: this tool's JSON format and the paper's saved-edit format.

Ours::

    {"model": "dcgan-digiface", "layer": "main.6", "rank": 1,
     "copy": {"sample": 1, "mask": [24, 16, 40, 48]},
     "paste": {"sample": 7, "mask": [40, 16, 56, 48]},
     "context": [{"sample": 7, "mask": [40, 16, 56, 48]}, ...]}

with optional `latents` ({"photo": "LATENT_FILE"}: a latent file written by `project`, its path
relative to the request file, or "sha256:DIGEST" of a latent given with the request), whose
names a selection's `sample` may take instead of a number; optional `method` ("rank",
"dense", or the authors' optimisation "paper" at their learning rate and "paper-scaled" at one
scaled to the weight), `grid` (how masks meet the layer's grid:
"coverage", or the authors' "paper"; the default is "paper" for the paper methods), `truncation`,
`regularization`, `strength` (the factor on the solved update, default 2), `goal` (where the
solve asks for the copied object: "paste", on the paste sample only as the paper does,
"context", also at each context selection on the other samples, or "rule", the default, also
wherever the context key fires on 128 further samples; the baselines "dense", "paper" and
"paper-scaled" always use "paste") and `erase` (a channel count, or true
for the default, instead of `copy`). `layer`, `rank`, `goal` and `strength` may each be
"auto", and `"auto": true` means all four: the tool then chooses them for this request
(`rewriting.choose`). Those a request leaves out are "auto" too, unless it says `"auto":
false` (then the defaults: the model's layer, rank 1, goal "rule", strength 2). Strength
applies to the rank method only: the baselines run as solved.

The paper's interface saved `{"object": [n, mask], "paste": [n, mask], "key": [[n, mask], ...]}`
without model or layer, and read it as its code does: `key` defaults to the paste selection, a
file without `object` is an erase (30 channels), `query` (a search) is not part of the edit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import RewritingError
from .latents import NAME, NamedLatent, Sample, read_latent_file
from .limits import check_context, read_json_file
from .masks import GRID_RULES, MaskSpec

METHODS = ("rank", "dense", "paper", "paper-scaled")
#: The methods that run the authors' optimisation (and default to their mask-to-grid rule).
PAPER_METHODS = ("paper", "paper-scaled")
DEFAULT_ERASE_CHANNELS = 30
#: The largest factor a request may put on its solved update.
MAX_STRENGTH = 10.0
#: Where the solve asks for the copied object: the paste sample only, also at the context
#: selections, or also wherever the context key fires on further samples (the default:
#: measured on examples/evaluation, it generalises furthest).
GOAL_RULES = ("paste", "context", "rule")
DEFAULT_GOAL = "rule"
#: The settings a request may leave to the per-request search (`rewriting.choose`).
AUTO_SETTINGS = ("layer", "rank", "goal", "strength")


@dataclass(frozen=True)
class Selection:
    """A brush selection: a sample (a number, or a named latent's name) and its mask; `paper`
    masks use the red channel."""

    sample: Sample
    mask: MaskSpec
    paper: bool = False


@dataclass(frozen=True)
class EditRequest:
    """Everything one edit needs; `layer` None means the model's recommended layer."""

    model: str
    paste: Selection
    context: tuple[Selection, ...] = ()
    copy: Selection | None = None
    layer: str | None = None
    rank: int = 1
    method: str = "rank"
    truncation: float | None = None
    erase: int | None = None
    regularization: float | None = None
    grid: str = "coverage"
    strength: float | None = None
    goal: str = DEFAULT_GOAL
    latents: Mapping[str, NamedLatent] = field(default_factory=dict)
    auto: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The request in this tool's format (round-trips through `parse_request`)."""
        out: dict[str, Any] = {"model": self.model, "layer": self.layer, "rank": self.rank}
        if self.copy is not None:
            out["copy"] = selection_json(self.copy)
        out["paste"] = selection_json(self.paste)
        out["context"] = [selection_json(s) for s in self.context]
        out["method"] = self.method
        out["grid"] = self.grid
        out["goal"] = self.goal
        for key in ("truncation", "erase", "regularization", "strength"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.latents:
            out["latents"] = {k: f"sha256:{v.digest()}" for k, v in sorted(self.latents.items())}
        out.update({setting: "auto" for setting in self.auto})
        if not self.auto:
            out["auto"] = False
        return out

    def samples(self) -> list[Sample]:
        """Every sample (number or latent name) the request refers to."""
        chosen = [self.paste] + list(self.context) + ([self.copy] if self.copy else [])
        return [s.sample for s in chosen]


def check_strength(strength: float, name: str = "strength") -> float:
    """The strength if it lies between 0 and MAX_STRENGTH, else a clear error naming it as
    `name` (a request's field, a command-line option)."""
    if not 0.0 <= strength <= MAX_STRENGTH:
        raise RewritingError(f"{name} must be between 0 and {MAX_STRENGTH:g}, got {strength!r}")
    return strength


def check_method_strength(method: str, strength: float | None) -> float | None:
    """The strength, refused for the baselines (dense and the authors' procedure run as solved:
    a factor other than 1 would no longer be the method they define)."""
    if method != "rank" and strength not in (None, 1.0):
        raise RewritingError(
            f"strength applies to the rank method only: {method} runs as solved (leave "
            f"strength out or give 1), got {strength!r}"
        )
    return strength


def auto_settings(data: dict, layer: Any = None, implicit: tuple[str, ...] = AUTO_SETTINGS
                  ) -> tuple[str, ...]:
    """The settings a decoded request leaves to the per-request search: those given as "auto",
    all of them for `"auto": true`, and, unless `"auto": false`, those of `implicit` it leaves
    out (`layer`: a layer given from outside). The baselines leave nothing to it."""
    flag = data.get("auto")
    if flag is not None and not isinstance(flag, bool):
        raise RewritingError(f'"auto" must be true or false, got {flag!r}')
    given = {**data, "layer": layer or data.get("layer")}
    asked = tuple(k for k in AUTO_SETTINGS if flag or given.get(k) == "auto")
    if data.get("method", "rank") != "rank":
        if asked:
            raise RewritingError(f"{', '.join(asked)} \"auto\" needs the rank method: the "
                                 "baselines run as they are defined")
        return ()
    return tuple(k for k in AUTO_SETTINGS
                 if k in asked or (flag is None and k in implicit and given.get(k) is None))


def selection_json(selection: Selection) -> dict[str, Any]:
    """A selection in this tool's request format."""
    data = asdict(selection)
    if not data.pop("paper"):
        return data
    return {**data, "paper_mask": True}


def parse_selection(value: Any, where: str, paper: bool = False) -> Selection:
    """A selection from a request (`paper`: the authors' [sample, mask] pair), or a clear error."""
    if paper:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise RewritingError(f"{where} must be [sample, mask]")
        sample, mask = value
    else:
        if not isinstance(value, dict) or "sample" not in value or "mask" not in value:
            raise RewritingError(f'{where} must be {{"sample": N, "mask": ...}}')
        sample, mask = value["sample"], value["mask"]
        paper = bool(value.get("paper_mask", False))
    named = isinstance(sample, str) and NAME.fullmatch(sample)
    if not named and (not isinstance(sample, int) or isinstance(sample, bool) or sample < 0):
        raise RewritingError(f"{where}: sample must be a non-negative integer or a latent's "
                             f"name, got {sample!r}")
    if not isinstance(mask, (str, list)):
        raise RewritingError(f"{where}: mask must be a box or a PNG data URL")
    return Selection(sample, mask if isinstance(mask, str) else list(mask), paper)


def _number(data: dict, key: str, kind: type, default: Any) -> Any:
    value = data.get(key, default)
    if value is None or value is default:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RewritingError(f"{key} must be a {kind.__name__}, got {value!r}")
    return value


def parse_latents(
    value: Any, given: Mapping[str, NamedLatent], folder: Path | None
) -> dict[str, NamedLatent]:
    """A request's `latents`: each name's file (read from `folder`, the request file's, when
    there is one) or "sha256:DIGEST" of a latent in `given`."""
    if not isinstance(value, dict):
        raise RewritingError('"latents" must map names to latent files')
    out = {}
    for name, source in value.items():
        if not NAME.fullmatch(name) or not isinstance(source, str):
            raise RewritingError(f"latents: {name!r} must be a name (letters, digits, - and _) "
                                 "mapped to a latent file")
        if source.startswith("sha256:"):
            if name not in given or given[name].digest() != source.removeprefix("sha256:"):
                raise RewritingError(f"latent {name!r} ({source[:19]}...) is not given with "
                                     "the request: name its latent file instead")
            out[name] = given[name]
        elif folder is None:
            raise RewritingError(f"latent {name!r}: latent files are read only for request "
                                 "files on the command line")
        else:
            out[name] = read_latent_file(folder / source)
    return out


def parse_request(
    data: Any, model: str | None = None, layer: str | None = None,
    latents: Mapping[str, NamedLatent] | None = None, folder: Path | None = None,
) -> EditRequest:
    """Validate a decoded JSON request (either format); `model`/`layer` override or fill in.
    Its `latents` come from `latents` (by digest) or files in `folder`."""
    if not isinstance(data, dict):
        raise RewritingError("an edit request must be a JSON object")
    ours = "copy" in data or "erase" in data
    if "object" in data or "key" in data or (isinstance(data.get("paste"), list) and not ours):
        return _paper_request(data, model, layer)
    model = model or data.get("model")
    if not isinstance(model, str) or not model:
        raise RewritingError('the request needs "model" (a model name)')
    if "paste" not in data:
        raise RewritingError('the request needs "paste": where the new rule is shown')
    erase = data.get("erase")
    if erase is True:
        erase = DEFAULT_ERASE_CHANNELS
    elif erase is not None and (not isinstance(erase, int) or isinstance(erase, bool) or erase < 1):
        raise RewritingError(f"erase must be true or a positive channel count, got {erase!r}")
    if erase is None and "copy" not in data:
        raise RewritingError('the request needs "copy" (or "erase")')
    if erase is not None and "copy" in data:
        raise RewritingError('give either "copy" or "erase", not both')
    context = data.get("context", [])
    if not isinstance(context, list):
        raise RewritingError('"context" must be a list of selections')
    check_context(context)
    method = data.get("method", "rank")
    if method not in METHODS:
        raise RewritingError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    grid = data.get("grid", "paper" if method in PAPER_METHODS else "coverage")
    if grid not in GRID_RULES:
        raise RewritingError(f"grid must be one of {', '.join(GRID_RULES)}, got {grid!r}")
    auto = auto_settings(data, layer)
    data = {k: v for k, v in data.items() if k not in auto}
    layer = None if "layer" in auto else layer
    goal = data.get("goal", DEFAULT_GOAL)
    if goal not in GOAL_RULES:
        raise RewritingError(f"goal must be one of {', '.join(GOAL_RULES)}, got {goal!r}")
    rank = _number(data, "rank", int, 1)
    if rank < 1:
        raise RewritingError(f"rank must be at least 1, got {rank}")
    strength = _number(data, "strength", float, None)
    if strength is not None:
        check_method_strength(method, check_strength(strength))
    layer = layer or data.get("layer")
    if layer is not None and not isinstance(layer, str):
        raise RewritingError(f"layer must be a layer name, got {layer!r}")
    regularization = _number(data, "regularization", float, None)
    if regularization is not None and not (math.isfinite(regularization) and regularization >= 0):
        raise RewritingError(f"regularization must be zero or positive, got {regularization!r}")
    return named_samples_carried(EditRequest(
        model=model,
        layer=layer,
        rank=rank,
        method=method,
        copy=parse_selection(data["copy"], "copy") if erase is None else None,
        paste=parse_selection(data["paste"], "paste"),
        context=tuple(parse_selection(item, f"context[{i}]") for i, item in enumerate(context)),
        truncation=_number(data, "truncation", float, None),
        erase=erase,
        regularization=regularization,
        grid=grid,
        strength=strength,
        goal=goal,
        latents=parse_latents(data.get("latents", {}), latents or {}, folder),
        auto=auto,
    ))


def named_samples_carried(request: EditRequest) -> EditRequest:
    """`request`, if every latent name its selections use is one of its `latents`."""
    missing = sorted({s for s in request.samples() if isinstance(s, str)} - set(request.latents))
    if missing:
        raise RewritingError(f"sample {missing[0]!r} names no latent in the request's "
                             '"latents"')
    return request


def _paper_request(data: dict, model: str | None, layer: str | None) -> EditRequest:
    """A file saved by the paper's interface, read as the authors' code reads it (`model` and
    `layer`, which their files lack, may be given in the file too: their code ignores them)."""
    model, layer = model or data.get("model"), layer or data.get("layer")
    if not isinstance(layer, (str, type(None))) or not isinstance(model, (str, type(None))):
        raise RewritingError("model and layer must be names")
    auto = auto_settings(data, layer, implicit=("rank", "goal", "strength"))
    if layer is None and "layer" not in auto:
        raise RewritingError("the paper's edit files do not record the layer: give --layer")
    if model is None:
        raise RewritingError("the paper's edit files do not record the model: give --model")
    if "paste" not in data:
        raise RewritingError(
            "this paper edit file has no 'paste': the authors' code applies neither an edit "
            "nor an erase without one"
        )
    paste = parse_selection(data["paste"], "paste", paper=True)
    keys = data.get("key", [])
    if not isinstance(keys, list):
        raise RewritingError("'key' must be a list of [sample, mask] pairs")
    check_context(keys)
    context = tuple(parse_selection(item, f"key[{i}]", paper=True) for i, item in enumerate(keys))
    erase = "object" not in data
    return named_samples_carried(EditRequest(
        model=model,
        layer=None if "layer" in auto else layer,
        copy=None if erase else parse_selection(data["object"], "object", paper=True),
        paste=paste,
        context=context,
        erase=DEFAULT_ERASE_CHANNELS if erase else None,
        auto=auto,
    ))


def read_request(path: str | Path, model: str | None = None, layer: str | None = None):
    """Read and validate a request file (size and nesting limited: `rewriting.limits`); the
    latent files it names are read relative to its folder."""
    return parse_request(read_json_file(path, "request file"), model, layer,
                         folder=Path(path).parent)
