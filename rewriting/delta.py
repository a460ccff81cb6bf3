"""Edits as low-rank deltas dW = s Lambda D on named layers: apply, stack, revert, save, load.

The strength s (1 = the solved update) scales an edit without solving again.

The base model is never changed in place. An `EditStack` holds one visitor's deltas and gives
the weights to render with, recomputed as W0 + dW_1 + ... + dW_n from the untouched base, so
reverting an edit leaves the weights bit-identical to never having applied it.
"""

from __future__ import annotations

import json
import uuid
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import __version__
from .atomic import write_atomically
from .errors import RewritingError
from .generator import Generator
from .latents import NamedLatent, from_tensors
from .limits import MAX_DELTA_NORM_RATIO, parse_json
from .request import check_strength
from .solve import expand

DELTA_FORMAT = "rewriting-delta/1"
STACK_FORMAT = "rewriting-stack/1"
#: Stored tensors of the latents an edit's request names are called `latents/<name>/<tensor>`.
LATENTS_PREFIX = "latents/"


#: The deltas alive in this process by their token (`Delta.__reduce__`).
_LIVE: weakref.WeakValueDictionary[str, Delta] = weakref.WeakValueDictionary()


def _arrived(token: str, fields: dict) -> Delta:
    """A pickled delta: the one alive here under `token`, else one rebuilt from its fields."""
    found = _LIVE.get(token)
    if found is None:
        found = Delta(**fields)
        found.token = token
        _LIVE[token] = found
    return found


@dataclass
class Delta:
    """dW = strength * expand(lam, directions) on the weight `weight` of layer `layer`.

    Its tensors are kept on the CPU. Pickled and back (a visitor's state through a ZeroGPU
    worker), a delta still alive here is the same object again, so identity checks hold."""

    layer: str
    weight: str
    key_axis: int
    lam: torch.Tensor
    directions: torch.Tensor
    model: str
    weights_sha256: str
    method: str = "rank"
    request: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    strength: float = 1.0
    #: The latents (projected photos) its request names as samples, stored with the delta.
    latents: dict[str, NamedLatent] = field(default_factory=dict)
    #: Names this object across processes (a copy made by `replace` gets a new one).
    token: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.token = uuid.uuid4().hex
        _LIVE[self.token] = self

    def __reduce__(self) -> tuple:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__
                  if name != "token"}
        return _arrived, (self.token, fields)

    @property
    def rank(self) -> int:
        return int(self.directions.shape[0])

    def dense(self, device: torch.device | None = None) -> torch.Tensor:
        """The full update dW in the weight's own layout, scaled by the strength, computed on
        `device` (default: the CPU, where the delta's tensors are kept)."""
        lam, directions = self.lam.to(device or "cpu"), self.directions.to(device or "cpu")
        return self.strength * expand(lam, directions, self.key_axis)

    def metadata(self) -> dict[str, str]:
        """Provenance stored beside the tensors."""
        return {
            "format": DELTA_FORMAT,
            "tool_version": __version__,
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "layer": self.layer,
            "weight": self.weight,
            "key_axis": str(self.key_axis),
            "rank": str(self.rank),
            "method": self.method,
            "strength": repr(float(self.strength)),
            "request": json.dumps(self.request, sort_keys=True),
            "metrics": json.dumps(self.metrics, sort_keys=True),
        }

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """`lambda`, `directions` and the named latents' tensors, each name after `prefix`."""
        out = {f"{prefix}lambda": self.lam.contiguous(),
               f"{prefix}directions": self.directions.contiguous()}
        for name, latent in self.latents.items():
            out.update(latent.tensors(f"{prefix}{LATENTS_PREFIX}{name}/"))
        return out

    def save(self, path: str | Path) -> None:
        """Write the delta as safetensors: its tensors and the metadata (atomically)."""
        tensors, metadata = self.tensors(), self.metadata()
        write_atomically(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))

    @classmethod
    def load(cls, path: str | Path) -> Delta:
        """Read a delta file; anything else is a clear error."""
        meta, tensors = _read_safetensors(path, f"delta {path}")
        if meta.get("format") != DELTA_FORMAT or not _holds_delta(tensors, ""):
            raise RewritingError(f"{path} is not a delta file written by this tool")
        return cls.from_parts(path, meta, tensors)

    @classmethod
    def from_parts(
        cls, path: str | Path, meta: dict, tensors: dict[str, torch.Tensor], prefix: str = ""
    ) -> Delta:
        """A delta from its metadata and its tensors as stored (named after `prefix`);
        anything malformed is a clear error that names `path`."""
        lam, directions = _checked_tensors(path, tensors[f"{prefix}lambda"],
                                           tensors[f"{prefix}directions"])
        try:
            key_axis = int(meta["key_axis"])
            if int(meta.get("rank", directions.shape[0])) != directions.shape[0]:
                raise ValueError(f"rank {meta['rank']} but {directions.shape[0]} directions")
            delta = cls(
                layer=meta["layer"],
                weight=meta["weight"],
                key_axis=key_axis,
                lam=lam,
                directions=directions,
                model=meta["model"],
                weights_sha256=meta["weights_sha256"],
                method=meta.get("method", "rank"),
                request=parse_json(meta.get("request", "{}"), "its request"),
                metrics=parse_json(meta.get("metrics", "{}"), "its metrics"),
                strength=check_strength(float(meta.get("strength", "1.0"))),
            )
        except (KeyError, ValueError, TypeError) as err:
            raise RewritingError(f"delta {path} has malformed metadata ({err})") from None
        if not isinstance(delta.request, dict) or not isinstance(delta.metrics, dict):
            raise RewritingError(f"delta {path} has malformed metadata (request or metrics)")
        delta.latents = _stored_latents(path, delta, tensors, prefix + LATENTS_PREFIX)
        return delta

    def check_applies_to(self, generator: Generator) -> None:
        """Refuse a delta made for another model or other weights."""
        if self.model != generator.name or self.weights_sha256 != generator.weights_sha256:
            raise RewritingError(
                f"this delta was made for model {self.model!r} (weights "
                f"{self.weights_sha256[:12]}), not {generator.name!r} "
                f"(weights {generator.weights_sha256[:12]})"
            )
        spec = generator.layer(self.layer)
        base = generator.parameter(spec.weight)
        rest = base.movedim(spec.key_axis, 0).shape[1:]
        if (
            spec.weight != self.weight
            or self.key_axis != spec.key_axis
            or self.directions.shape[1] != spec.key_channels
            or self.lam.shape != (self.rank, *rest)
        ):
            raise RewritingError(
                f"delta for layer {self.layer} does not fit that layer's weight {spec.weight} "
                f"{list(base.shape)} (key axis {self.key_axis}, lambda {list(self.lam.shape)}, "
                f"directions {list(self.directions.shape)})"
            )
        ratio = float(self.dense().norm()) / float(base.norm())
        if not ratio <= MAX_DELTA_NORM_RATIO:
            raise RewritingError(
                f"delta for layer {self.layer} would change its weight by {ratio:.3g} times the "
                f"weight's norm (the limit is {MAX_DELTA_NORM_RATIO}): not a plausible edit"
            )


def _read_safetensors(path: str | Path, what: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """A safetensors file's metadata and tensors, or a clear error naming it `what`."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        raise RewritingError(f"cannot read {what}: {err}") from None
    return meta, tensors


def save_stack(deltas: Sequence[Delta], path: str | Path) -> None:
    """Write a stack of edits, oldest first, as one safetensors file (atomically)."""
    tensors = {}
    for i, delta in enumerate(deltas):
        tensors.update(delta.tensors(f"{i}."))
    metadata = {"format": STACK_FORMAT, "edits": json.dumps([delta.metadata() for delta in deltas])}
    write_atomically(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_stack(path: str | Path, name: str | None = None) -> list[Delta]:
    """Read a stack file (or a single delta file), called `name` in messages (default: its
    path); anything else is a clear error."""
    where = name or str(path)
    meta, tensors = _read_safetensors(path, where)
    if meta.get("format") == DELTA_FORMAT and _holds_delta(tensors, ""):
        return [Delta.from_parts(where, meta, tensors)]
    edits = parse_json(meta.get("edits", "null"), "its list of edits")
    if meta.get("format") != STACK_FORMAT or not isinstance(edits, list):
        raise RewritingError(f"{where} is not an edits file written by this tool")
    prefixes = [f"{i}." for i in range(len(edits))]
    if not all(_holds_delta({k: v for k, v in tensors.items() if k.startswith(p)}, p)
               for p in prefixes) or any(not k.startswith(tuple(prefixes)) for k in tensors):
        raise RewritingError(f"{where}: its tensors do not match its {len(edits)} edits")
    if not all(isinstance(item, dict) for item in edits):
        raise RewritingError(f"{where} has malformed metadata (edits)")
    return [Delta.from_parts(where, item, tensors, p)
            for item, p in zip(edits, prefixes, strict=True)]


def _holds_delta(tensors: dict[str, torch.Tensor], prefix: str) -> bool:
    """Whether the tensors named after `prefix` are `lambda`, `directions` and latents."""
    names = {k.removeprefix(prefix) for k in tensors}
    return {"lambda", "directions"} <= names and all(
        n in ("lambda", "directions") or n.startswith(LATENTS_PREFIX) for n in names)


def _stored_latents(
    path: str | Path, delta: Delta, tensors: dict[str, torch.Tensor], prefix: str
) -> dict[str, NamedLatent]:
    """The latents stored with a delta (tensors `prefix<name>/...`), each the one its request
    names by digest."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        if key.startswith(prefix):
            name, _, part = key.removeprefix(prefix).partition("/")
            groups.setdefault(name, {})[part] = tensor
    named = delta.request.get("latents", {})
    out = {}
    for name, group in groups.items():
        latent = from_tensors(group, delta.model, delta.weights_sha256,
                              f"delta {path}: latent {name!r}")
        if not isinstance(named, dict) or named.get(name) != f"sha256:{latent.digest()}":
            raise RewritingError(f"delta {path}: its latent {name!r} is not the one its "
                                 "request names")
        out[name] = latent
    if isinstance(named, dict) and set(named) - set(out):
        raise RewritingError(f"delta {path}: its request names latents {sorted(named)} but "
                             f"it holds {sorted(out)}")
    return out


def _checked_tensors(
    path: str | Path, lam: torch.Tensor, directions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lambda [r, ...] and directions [r, C_in] as float32: finite, floating point, same r >= 1."""
    for name, tensor in (("lambda", lam), ("directions", directions)):
        if not tensor.is_floating_point():
            raise RewritingError(f"delta {path}: {name} holds {tensor.dtype}, not floating point")
        if not bool(torch.isfinite(tensor).all()):
            raise RewritingError(f"delta {path}: {name} holds NaN or infinite values")
    if directions.dim() != 2 or lam.dim() < 2 or not 1 <= directions.shape[0] == lam.shape[0]:
        raise RewritingError(
            f"delta {path}: lambda {list(lam.shape)} and directions {list(directions.shape)} "
            "do not agree on a rank of at least 1"
        )
    return lam.float(), directions.float()


class EditStack:
    """One visitor's edits on a shared, read-only generator."""

    def __init__(self, generator: Generator, deltas: Iterable[Delta] = ()) -> None:
        self.generator = generator
        self.deltas: list[Delta] = []
        for delta in deltas:
            self.push(delta)

    def push(self, delta: Delta) -> None:
        """Apply an edit on top of the others."""
        delta.check_applies_to(self.generator)
        self.deltas.append(delta)

    def revert(self, index: int) -> Delta:
        """Remove the edit at `index` (others stay); returns it."""
        if not -len(self.deltas) <= index < len(self.deltas):
            raise RewritingError(f"there is no edit number {index} to revert")
        return self.deltas.pop(index)

    def weights(self, device: torch.device | None = None) -> dict[str, torch.Tensor]:
        """Edited weights to override the base with: W0 + dW_1 + ... in the order applied, on
        `device` (default: the generator's)."""
        device = device or self.generator.device
        edited: dict[str, torch.Tensor] = {}
        for delta in self.deltas:
            current = edited.get(delta.weight, self.generator.parameter(delta.weight).to(device))
            edited[delta.weight] = current + delta.dense(device)
        return edited

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The full edited state of the network (base tensors where nothing was edited), on
        the CPU: computed there, so its digest is the same whichever device renders."""
        state = {k: v.detach().cpu() for k, v in self.generator.net.state_dict().items()}
        state.update(self.weights(torch.device("cpu")))
        return {k: v.contiguous() for k, v in state.items()}
