"""One visitor's editing session on a shared, read-only model: its state, pictures, edits, files.

The page keeps a `Session` per visitor. A session never copies the model: it holds an
`EditStack` of deltas on the generator that `zoo.hub.load_any` shares between visitors,
and every change returns a new session, so an action that fails leaves the old one as it was.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save as save_tensors
from safetensors.torch import save_file

from rewriting import __version__
from rewriting.atomic import safe_name, write_atomically
from rewriting.choose import Search, search
from rewriting.delta import Delta, EditStack, save_stack
from rewriting.editdir import before_after, write_edit_dir
from rewriting.efficacy import MEASURES, RuleProbe
from rewriting.errors import RewritingError
from rewriting.features import read_layer
from rewriting.generator import Generator, LayerSpec
from rewriting.goal import paste_goal
from rewriting.latents import NamedLatent, Sample, check_sample_latent, distinct, sample_latents
from rewriting.masks import mask_image, to_grid
from rewriting.metrics import held_out_samples
from rewriting.nethook import replace_output
from rewriting.problem import EditProblem
from rewriting.render import render, render_z
from rewriting.request import (
    AUTO_SETTINGS,
    EditRequest,
    Selection,
    check_method_strength,
    check_strength,
    parse_request,
    parse_selection,
    selection_json,
)
from rewriting.rewrite import execute, prepare_problem
from rewriting.solve import measured
from rewriting.stats import KeyStats, key_stats
from rewriting.suggest import LayerSuggestion, suggest_layer
from rewriting.threads import one_thread
from rewriting.verdict import VERDICT_KEYS, assess
from zoo.fetch import anonymous_hub
from zoo.hub import HUB_PREFIX, MAX_STACK, load_any_stack
from zoo.publish import check_repo_id, publish
from zoo.registry import list_models, model_entry

from .comparison_picture import COLUMNS, labelled_rows
from .pictures import tint
from .renders import keep, render_identity, rendered
from .snapshots import (
    SNAPSHOT_FORMAT,
    checked_snapshot,
    checked_stack,
    restored_latents,
    snapshot_edits,
    stack_file,
)

#: The name a visitor's projected photo takes as a sample.
PHOTO = "photo"
#: Held-out samples on which an executed edit is measured and shown before and after.
HELD_OUT = tuple(held_out_samples(32))
#: What `measure` takes again at the latest edit's strength (`at_strength`).
AT_STRENGTH = frozenset({"residual_at_strength", "delta_norm_ratio_at_strength"})
#: Key statistics kept in memory (the oldest are dropped; the disk cache keeps them all).
STATS_KEPT = 8

_stats: dict[tuple, KeyStats] = {}
#: Settings searches kept in memory, by what they depend on (the oldest are dropped): the same
#: request on the same edits (an example, clicked by every visitor) is searched once. The
#: searches are shared read-only.
SEARCHES_KEPT = 32
_searches: dict[tuple, Search] = {}
_stats_lock = threading.Lock()
_computing: dict[tuple, threading.Lock] = {}


@dataclass(frozen=True)
class Session:
    """A visitor's edits (deltas on the shared model), layer, truncation, brush selections and
    the latents (a projected photo) that selections may name as their sample."""

    stack: EditStack
    layer: str
    truncation: float | None
    copy: Selection | None = None
    paste: Selection | None = None
    context: tuple[Selection, ...] = ()
    latents: Mapping[str, NamedLatent] = field(default_factory=dict)

    def __hash__(self) -> int:
        """Gradio hashes the state to tell when it changed; box masks are lists, so the
        selections count by their text, the edits by identity (every change makes new ones)
        and the latents by digest."""
        return hash((self.generator.name, tuple(map(id, self.stack.deltas)), self.layer,
                     self.truncation, repr((self.copy, self.paste, self.context)),
                     tuple(sorted((k, v.digest()) for k, v in self.latents.items()))))

    @classmethod
    def start(
        cls, model: str, progress: Callable[[float, str], None] | None = None,
        allow_local: bool = False,
    ) -> Session:
        """A fresh session on a catalog or public `hub:` model (loaded once, then shared); a
        published stack of edits comes back as the session's edits, each revertible.

        A session serves a visitor, so its Hub requests never carry this machine's token, and
        a model named by a file path on this machine loads only where `allow_local` says so.
        """
        if not allow_local and not model.startswith(HUB_PREFIX):
            try:  # an unknown name is refused, a server path included
                model_entry(model)
            except RewritingError:
                raise RewritingError(f"unknown model {model!r}: the model list names those "
                                     "this app offers") from None
        with anonymous_hub():
            stack = load_any_stack(model, progress)
        generator = stack.generator
        return cls(checked_stack(generator, stack.deltas), generator.default_layer,
                   generator.check_truncation(None))

    @property
    def generator(self) -> Generator:
        """The shared, read-only model this session edits."""
        return self.stack.generator

    @property
    def spec(self) -> LayerSpec:
        """The layer that edits are made on."""
        return self.generator.layer(self.layer)

    def weights(self, edited: bool = True) -> dict[str, torch.Tensor]:
        """Weight overrides to render with: the visitor's edits, or none for the original."""
        return self.stack.weights() if edited else {}

    def with_layer(self, layer: str) -> Session:
        """The session editing another layer of the same model."""
        return replace(self, layer=self.generator.layer(layer).name)

    def with_truncation(self, truncation: float | None) -> Session:
        """The session sampling at another truncation (None: the family's default)."""
        return replace(self, truncation=self.generator.check_truncation(truncation))

    def with_selection(self, role: str, selection: Selection) -> Session:
        """Store a brush selection as the copy, the paste, or one more context example."""
        self.check(selection)
        if role == "context":
            return replace(self, context=(*self.context, selection))
        return replace(self, **{role: selection})

    def check(self, selection: Selection) -> None:
        """Refuse a selection on a sample out of range or not held, or with an empty or
        outside mask."""
        sample = selection.sample
        if isinstance(sample, int) and sample > self.generator.max_sample:
            raise RewritingError(f"sample {sample} is out of range for this model")
        if isinstance(sample, str) and sample not in self.latents:
            raise RewritingError(f"there is no {sample!r} to select on: project a photo first")
        mask_image(selection.mask, self.generator.image_size, selection.paper)

    def with_photo(self, photo: NamedLatent) -> Session:
        """The session whose photo sample is `photo` (selections on an earlier photo dropped)."""
        if PHOTO in self.latents and self.latents[PHOTO].digest() == photo.digest():
            return self
        check_sample_latent(photo, self.generator, PHOTO)

        def kept(selection: Selection | None) -> Selection | None:
            return None if selection is None or selection.sample == PHOTO else selection

        return replace(self, copy=kept(self.copy), paste=kept(self.paste),
                       context=tuple(s for s in self.context if kept(s)),
                       latents={**self.latents, PHOTO: photo})

    def without_context(self, index: int) -> Session:
        """The session without one context example (negative indices count from the end)."""
        if not -len(self.context) <= index < len(self.context):
            raise RewritingError("there is no context example to remove")
        index %= len(self.context)
        return replace(self, context=self.context[:index] + self.context[index + 1 :])

    def with_edits(self, deltas: Sequence[Delta]) -> Session:
        """The session with these edits instead of its own (each checked against the model)."""
        return replace(self, stack=checked_stack(self.generator, deltas))

    def with_edit(self, delta: Delta) -> Session:
        """The session with one more executed edit on top of its others."""
        if len(self.stack.deltas) >= MAX_STACK:
            raise RewritingError(f"this session holds {MAX_STACK} edits, the most it may: "
                                 "revert one first")
        return replace(self, stack=EditStack(self.generator, [*self.stack.deltas, delta]))

    def with_strength(self, strength: float) -> Session:
        """The session with its latest edit scaled to `strength` (W0 + s Lambda D), unsolved."""
        if not self.stack.deltas:
            raise RewritingError("there is no edit to scale: Execute one first")
        last = self.stack.deltas[-1]
        check_method_strength(last.method, check_strength(strength))
        # What was measured at the old strength no longer holds: `measure` makes it again.
        solved = {k: v for k, v in last.metrics.items()
                  if k not in MEASURES and k not in VERDICT_KEYS and k not in AT_STRENGTH}
        scaled = replace(last, strength=float(strength),
                         request={**last.request, "strength": float(strength)},
                         metrics={**solved, "strength": float(strength)})
        return replace(self, stack=EditStack(self.generator, [*self.stack.deltas[:-1], scaled]))

    def reverted(self, index: int) -> Session:
        """The session without its edit number `index` (0-based); the others stay."""
        stack = EditStack(self.generator, self.stack.deltas)
        stack.revert(index)
        return replace(self, stack=stack)

    def request(
        self, rank: int = 1, method: str = "rank", regularization: float | None = None,
        erase: int | None = None, auto: bool = False,
    ) -> EditRequest:
        """The edit the current selections describe, validated like a request file (`auto`:
        layer, rank, goal and strength left to the per-request search)."""
        if self.paste is None:
            what = "to erase" if erase else "the copied region goes"
            raise RewritingError(f"nothing to paste: brush where {what} and press Paste")
        if erase is None and self.copy is None:
            raise RewritingError("nothing copied: brush a region on a sample and press Copy")
        chosen = (self.paste, *self.context, *((self.copy,) if erase is None else ()))
        used = {s.sample for s in chosen if isinstance(s.sample, str)}
        request = EditRequest(
            model=self.generator.name, layer=self.layer, paste=self.paste, context=self.context,
            copy=None if erase else self.copy, rank=int(rank), method=method,
            truncation=self.truncation, erase=erase, regularization=regularization,
            latents={k: v for k, v in self.latents.items() if k in used},
            auto=AUTO_SETTINGS if auto and method == "rank" else (),
        )
        return parse_request(request.to_json(), latents=self.latents)

    def loaded(self, data: object) -> tuple[Session, EditRequest]:
        """Selections and layer from a saved edit: this tool's format or the paper's."""
        if isinstance(data, dict) and ("object" in data or "key" in data):
            request = parse_request(data, self.generator.name, self.layer)
        else:
            request = parse_request(data, latents=self.latents)
        if request.model != self.generator.name:
            raise RewritingError(
                f"this edit is for model {request.model!r}: pick that model first"
            )
        session = replace(
            self.with_layer(request.layer or self.generator.default_layer),
            copy=request.copy, paste=request.paste, context=request.context,
        ).with_truncation(request.truncation)
        for selection in (request.copy, request.paste, *request.context):
            if selection is not None:
                session.check(selection)
        return session, request


def snapshot(session: Session) -> dict:
    """The session as JSON for the visitor's browser: model, layer, truncation, selections and
    the edits (a stack file, base64: a few KB an edit)."""
    with stack_file() as path:
        save_stack(session.stack.deltas, path)
        edits = base64.b64encode(path.read_bytes()).decode()
    return {
        "format": SNAPSHOT_FORMAT, "model": session.generator.name, "layer": session.layer,
        "truncation": session.truncation, "edits": edits,
        "copy": None if session.copy is None else selection_json(session.copy),
        "paste": None if session.paste is None else selection_json(session.paste),
        "context": [selection_json(s) for s in session.context],
        "latents": {k: base64.b64encode(save_tensors(v.tensors())).decode()
                    for k, v in session.latents.items()},
    }


def restore(data: object) -> Session:
    """A session from `snapshot`'s JSON (untrusted: it comes back from a browser), checked field
    by field under the limits of a loaded file before its model is loaded."""
    kept = checked_snapshot(data)
    deltas = snapshot_edits(kept["edits"])
    chosen = [(role, parse_selection(kept[role], role)) for role in ("copy", "paste")
              if kept[role] is not None]
    chosen += [("context", parse_selection(item, f"context[{i}]"))
               for i, item in enumerate(kept["context"])]
    session = Session.start(kept["model"]).with_edits(deltas)
    session = session.with_layer(kept["layer"]).with_truncation(kept["truncation"])
    session = replace(session, latents=restored_latents(kept["latents"], session.generator))
    for role, selection in chosen:
        session = session.with_selection(role, selection)
    return session


def samples(session: Session, numbers: Sequence[Sample], edited: bool = True) -> np.ndarray:
    """uint8 images [N, H, W, 3] of the session's model (numbered samples or the photo), with
    or without its edits."""
    stack = session.stack if edited else EditStack(session.generator)
    return stack_samples(stack, session.truncation, numbers, session.latents)


def stack_samples(
    stack: EditStack, truncation: float | None, numbers: Sequence[Sample],
    latents: Mapping[str, NamedLatent] | None = None,
) -> np.ndarray:
    """uint8 images [N, H, W, 3] of a stack's edited model: numbered samples kept or rendered,
    a named one (the photo) rendered from its latent."""
    numbered = [s for s in numbers if isinstance(s, int)]
    kept = rendered(
        render_identity(stack, truncation), numbered,
        lambda missing: render(stack.generator, missing, truncation, stack.weights()).numpy(),
    )
    named = [s for s in numbers if not isinstance(s, int)]
    if not named:
        return kept
    z = sample_latents(stack.generator, named, latents or {})
    photos = render_z(stack.generator, z, truncation, stack.weights()).numpy()
    images = {**dict(zip(numbered, kept, strict=True)), **dict(zip(named, photos, strict=True))}
    return np.stack([images[s] for s in numbers])


def selection_image(session: Session, selection: Selection) -> np.ndarray:
    """The selected sample (under the current edits) with its mask tinted."""
    image = samples(session, [selection.sample])[0]
    cover = mask_image(selection.mask, session.generator.image_size, selection.paper)
    return tint(image, cover.numpy(), 0.5)


def paste_preview(session: Session) -> np.ndarray:
    """The goal: the copied features pasted into the layer, rendered by the rest of the network
    (kept with the renders, named by the edits, the layer and both selections)."""
    if session.copy is None or session.paste is None:
        raise RewritingError("the preview needs both a Copy and a Paste selection")
    named = {s.sample for s in (session.copy, session.paste) if isinstance(s.sample, str)}
    identity = (*render_identity(session.stack, session.truncation), "paste preview",
                session.layer, json.dumps([selection_json(session.copy),
                                           selection_json(session.paste)]),
                tuple(sorted((n, session.latents[n].digest()) for n in named)))
    return rendered(identity, [0], lambda _: _paste_preview(session)[None])[0]


def _paste_preview(session: Session) -> np.ndarray:
    generator, spec, weights = session.generator, session.spec, session.weights()
    numbers = distinct([session.copy.sample, session.paste.sample])
    z = sample_latents(generator, numbers, session.latents)
    reading = read_layer(generator, spec, z, session.truncation, weights)

    def values(selection: Selection) -> tuple[torch.Tensor, torch.Tensor]:
        cover = mask_image(selection.mask, generator.image_size, selection.paper)
        value_mask = to_grid(cover, spec.value_grid, spec.value_margin)
        return reading.values[numbers.index(selection.sample)], value_mask

    goal = paste_goal(*values(session.copy), *values(session.paste), spec.stride)
    net = generator.view(weights)
    with replace_output(net, spec.module, lambda _i, out: goal.target.expand_as(out)):
        return render_z(generator, z[numbers.index(session.paste.sample)][None],
                        session.truncation, net=net)[0].numpy()


def statistics(
    session: Session, progress: Callable[[int, int], None] | None = None
) -> KeyStats:
    """The layer's key statistics, from memory, the disk cache, or computed the first time."""
    ident = (session.generator.name, session.generator.weights_sha256, session.layer,
             session.truncation)
    with _stats_lock:
        found = _stats.get(ident)
        computing = _computing.setdefault(ident, threading.Lock())
    if found is not None:
        return found
    with computing:  # visitors asking at once wait for one computation
        with _stats_lock:
            found = _stats.get(ident)
        if found is None:
            found = key_stats(session.generator, session.spec, session.truncation,
                              progress=progress)
            with _stats_lock:
                _stats[ident] = found
                while len(_stats) > STATS_KEPT:
                    _stats.pop(next(iter(_stats)))
    return found


#: A pixel box (top, left, bottom, right), or None where the rule's goal lies nowhere.
Box = tuple[int, int, int, int] | None


@dataclass(frozen=True)
class Shown:
    """The held-out samples an edit is shown on (where its rule fires most) and its goal boxes."""

    numbers: tuple[int, ...]
    boxes: tuple[Box, ...]


def run_edit(session: Session, request: EditRequest, stats: KeyStats) -> tuple[Session, dict]:
    """Execute a request on top of the session's edits; the new session and the edit's metrics."""
    edited, metrics, _ = run_edit_shown(session, request, stats, 0)
    return edited, metrics


@dataclass(frozen=True, eq=False)
class Pending:
    """An executed edit whose measures are still to come: the probe read before the edit, the
    session before it, and the edited session to measure."""

    probe: RuleProbe | None
    before: Session
    after: Session
    search: Search | None = None

    def __reduce__(self) -> tuple:
        """Pickled (to or from a ZeroGPU worker), a pending edit travels without its probe
        (views of the network, tensors on the GPU): `measure` reads it again there."""
        return Pending, (None, self.before, self.after, self.search)

    @property
    def delta(self) -> Delta:
        """The edit being measured."""
        return self.after.stack.deltas[-1]

    def rescaled(self, after: Session) -> Pending:
        """The same edit at another strength (the probe still holds)."""
        return replace(self, after=after)

    def holds(self, delta: Delta) -> bool:
        """Whether `delta` is this edit, measured or not, at any strength (the same solved
        Lambda: measuring and rescaling copy the delta, never its tensors)."""
        return delta.lam is self.delta.lam


def choose_settings(
    session: Session, request: EditRequest, progress: Callable[[int, int], None] | None = None
) -> tuple[EditRequest, Search]:
    """The request with the settings it leaves to the search chosen (on top of the session's
    edits), and the search (kept: the same request on the same edits is searched once);
    first-time statistics of a layer reported to `progress`."""
    ident = (*render_identity(session.stack, session.truncation), session.layer,
             json.dumps(request.to_json(), sort_keys=True))
    with _stats_lock:
        searching = _computing.setdefault(ident, threading.Lock())
    with searching:  # visitors asking at once wait for one search
        with _stats_lock:
            found = _searches.get(ident)
        if found is None:
            found = search(session.generator, request, session.stack,
                           layer_statistics(session, progress))
            with _stats_lock:
                _searches[ident] = found
                _computing.pop(ident, None)  # later callers find the search itself
                while len(_searches) > SEARCHES_KEPT:
                    _searches.pop(next(iter(_searches)))
    return found.chosen.setting.apply(request), found


def layer_statistics(
    session: Session, progress: Callable[[int, int], None] | None = None
) -> Callable[[str], KeyStats]:
    """Any layer's key statistics for the session's model (`statistics` of that layer)."""
    return lambda layer: statistics(session.with_layer(layer), progress)


def execute_shown(
    session: Session, request: EditRequest, stats: KeyStats, count: int,
    found: Search | None = None,
) -> tuple[Session, Shown, Pending]:
    """Solve a request on top of the session's edits: the edited session, the `count` held-out
    samples where the new rule fires most, and what `measure` needs later (`found`: the
    search that chose its settings, if one did)."""
    if request.model != session.generator.name:
        raise RewritingError(
            f"this session edits {session.generator.name!r}, not {request.model!r}"
        )
    result = execute(session.generator, request, session.stack, stats)
    edited = session.with_edit(result.delta)
    probe = RuleProbe(session.generator, result.problem, HELD_OUT)
    numbers = probe.strongest(count) if count else []
    shown = Shown(tuple(numbers), tuple(probe.goal_box(n) for n in numbers))
    return edited, shown, Pending(probe, session, edited, found)


@one_thread()
def measure(pending: Pending) -> dict:
    """The edit's metrics: its solve's, how far the rule reaches on the held-out samples
    (efficacy, generalisation, specificity, the change inside and outside where it fires)
    beside a random update's, and the verdict (with the search's advice when it did not take)."""
    probe, after = pending.probe or probe_again(pending), pending.after
    weights = after.weights()
    passes = probe.run(weights)
    change = probe.measure(weights, passes)
    floor = probe.floor(weights, pending.delta.rank)
    verdict, found = assess(pending.before.generator, probe.problem, pending.delta, change, floor,
                            HELD_OUT, pending.before.stack, pending.search,
                            layer_statistics(pending.before))
    # The probe's renders serve the before/after picture and the gallery later.
    for kept, images in ((pending.before, probe.original), (after, passes.held_out)):
        keep(render_identity(kept.stack, probe.problem.truncation), HELD_OUT, images.numpy())
    return {**pending.delta.metrics, **change, "random_floor": floor, **verdict.record(),
            **({"search": found.record()} if found else {}), "layer": probe.problem.spec.name,
            **at_strength(probe.problem, pending.delta)}


def at_strength(problem: EditProblem, delta: Delta) -> dict:
    """The goal residual and ||dW||/||W|| of `delta` at its current strength, measured as the
    solve measures them (whose own `residual` and `delta_norm_ratio` are at strength 1)."""
    weight = problem.weight
    solution = measured(problem.module, problem.spec, weight,
                        delta.strength * delta.lam.to(weight.device),
                        delta.directions.to(weight.device), problem.keys, problem.inputs,
                        problem.goal, 0.0, delta.metrics.get("solver", ""))
    return {"residual_at_strength": solution.residual,
            "delta_norm_ratio_at_strength": solution.delta_norm_ratio}


def probe_again(pending: Pending) -> RuleProbe:
    """The probe of a pending edit that crossed processes without it: its request prepared
    again on the session before the edit (the statistics from memory or the cache)."""
    delta, before = pending.delta, pending.before
    request = parse_request(delta.request, latents=delta.latents)
    stats = statistics(before.with_layer(delta.layer))
    problem = prepare_problem(before.generator, request, before.stack, stats)
    return RuleProbe(before.generator, problem, HELD_OUT)


def with_measures(session: Session, pending: Pending, metrics: dict) -> Session:
    """The session with the measured edit's metrics, if it still holds that edit (a revert or
    a rescale since leaves it as it is)."""
    deltas = list(session.stack.deltas)
    for i, delta in enumerate(deltas):
        if delta is pending.delta:
            deltas[i] = replace(delta, metrics=metrics)
            return replace(session, stack=EditStack(session.generator, deltas))
    return session


def run_edit_shown(
    session: Session, request: EditRequest, stats: KeyStats, count: int
) -> tuple[Session, dict, Shown]:
    """`run_edit`, and the `count` held-out samples where the new rule fires most."""
    edited, shown, pending = execute_shown(session, request, stats, count)
    metrics = measure(pending)
    return with_measures(edited, pending, metrics), metrics, shown


def comparison(session: Session, shown: Shown) -> Image.Image:
    """The latest edit on the first COLUMNS shown samples (columns), in rows: the original
    model, the model before this edit (only when earlier edits change it), after this edit and
    what it changed (x4): short enough to fit beside the verdict."""
    if not session.stack.deltas:
        raise RewritingError("there is no edit to show: Execute one first")
    numbers = shown.numbers[:COLUMNS]
    earlier = EditStack(session.generator, session.stack.deltas[:-1])

    def images(stack: EditStack) -> np.ndarray:
        return stack_samples(stack, session.truncation, numbers)

    before, after = images(earlier), images(session.stack)
    rows = [("original model", images(EditStack(session.generator)))]
    if any(d.strength != 0 for d in earlier.deltas):
        rows.append(("before this edit", before))
    changed = np.clip(np.abs(after.astype(np.int16) - before) * 4, 0, 255).astype(np.uint8)
    rows += [("after this edit", after), ("what this edit changed (x4)", changed)]
    return labelled_rows(rows)


def suggest(session: Session, request: EditRequest) -> LayerSuggestion:
    """Solve the request at every layer of the session's model and suggest one (engine helper)."""
    return suggest_layer(session.generator, request, HELD_OUT, session.stack)


def model_note(generator: Generator) -> str:
    """One line about a catalog model: what it draws, its size and licence."""
    height, width = generator.image_size
    listed = [m for m in list_models(generator.name) if m.name == generator.name]
    if generator.name.startswith(HUB_PREFIX) or not listed:
        return f"an edited {generator.family} published on the Hub · {height}x{width} px"
    entry = listed[0]
    return f"{entry.description or entry.family} · {height}x{width} px · license {entry.license}"


def history(session: Session) -> list[str]:
    """The session's executed edits, numbered from 1, oldest first."""
    return [f"{i + 1}. {edit_label(d)}" for i, d in enumerate(session.stack.deltas)]


def edit_label(delta: Delta) -> str:
    """One line describing an executed edit at its current strength (its request, in either
    format, was checked when the edit joined a session)."""
    request = parse_request(delta.request, latents=delta.latents)
    if request.copy is None:
        what = f"erase on #{request.paste.sample}"
    else:
        what = f"copy #{request.copy.sample} → paste #{request.paste.sample}"
    marks = len(request.context)
    words = [what, f"{marks} context mark{'s' * (marks != 1)}", f"layer {delta.layer}",
             f"strength {delta.strength:g}"]
    words += [f"rank {delta.rank}"] * (delta.rank != 1)
    words += [f"{delta.method} method"] * (delta.method != "rank")
    return ", ".join(words)


def save_delta(session: Session, index: int, folder: Path) -> Path:
    """Write one executed edit's delta as safetensors."""
    if not -len(session.stack.deltas) <= index < len(session.stack.deltas):
        raise RewritingError("execute an edit first: there is no delta to download")
    path = folder / f"delta-{index % len(session.stack.deltas) + 1}.safetensors"
    session.stack.deltas[index].save(path)
    return path


def save_edits(session: Session, folder: Path) -> Path:
    """Write all the session's edits, oldest first, as one stack file."""
    if not session.stack.deltas:
        raise RewritingError("execute an edit first: there are no edits to save")
    path = folder / f"{safe_name(session.generator.name)}-edits.safetensors"
    write_atomically(path, lambda tmp: save_stack(session.stack.deltas, tmp))
    return path


def save_weights(session: Session, folder: Path) -> Path:
    """Write the full edited weights (base tensors where nothing was edited) as safetensors."""
    generator = session.generator
    metadata = {
        "model": generator.name,
        "family": generator.family,
        "weights_sha256": generator.weights_sha256,
        "edits": json.dumps([d.metadata() for d in session.stack.deltas]),
        "tool_version": __version__,
    }
    path = folder / f"{safe_name(generator.name)}-edited.safetensors"
    state = session.stack.state_dict()
    write_atomically(path, lambda tmp: save_file(state, tmp, metadata=metadata))
    return path


def publish_edit(
    session: Session,
    repo_id: str,
    token: str | None,
    folder: Path,
    private: bool = False,
    delta_only: bool = False,
    exist_ok: bool = False,
    progress: Callable[[float, str], None] | None = None,
) -> str:
    """Publish the session's edit, or its stack of edits, to the Hub in one commit; returns the
    commit's URL. Each edit's picture shows it on top of the ones before it."""
    deltas = session.stack.deltas
    if not deltas:
        raise RewritingError("execute an edit first: there is nothing to publish")
    repo_id = check_repo_id(repo_id)  # before the pictures are rendered
    folders = []
    for index, delta in enumerate(deltas):
        before = EditStack(session.generator, deltas[:index]).weights()
        after = EditStack(session.generator, deltas[: index + 1]).weights()
        picture = before_after(session.generator, HELD_OUT[:12], session.truncation, before, after)
        folders.append(folder / f"edit-{index + 1}")
        write_edit_dir(folders[-1], delta, delta.request, picture, delta.metrics)
    commit = publish(
        folders, repo_id, token, private=private, delta_only=delta_only,
        exist_ok=exist_ok, progress=progress, base=session.generator,
    )
    return commit.commit_url
