"""One edit from request to delta: statistics, directions, goal, solve (the paper's Execute).

`execute` never modifies the generator or the given edit stack: it returns a `Delta` that the
caller pushes onto its own stack, so a failed edit leaves everything as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from .delta import Delta, EditStack
from .directions import context_directions, context_key
from .errors import RewritingError
from .features import LayerReading, read_layer
from .generator import Generator, LayerSpec, layer_value
from .goal import Goal, erase_channels, erase_goal, paste_goal, place_object
from .latents import Sample, check_sample_latent, distinct, sample_latents
from .masks import bounding_box, grid_mask, mask_image
from .metrics import firing_threshold
from .paper import paper_solution
from .problem import EditProblem
from .readings import base_readings
from .render import RENDER_BATCH
from .request import PAPER_METHODS, EditRequest, Selection
from .solve import Solution, solve
from .stats import STATS_SEED, KeyStats, default_cache_dir, key_stats
from .threads import one_thread
from .transfer import transfer_goals

#: An update larger than this fraction of the layer's weight norm is refused as ill-conditioned.
MAX_DELTA_RATIO = 1.0
#: Loss weight that holds the rest of the paste sample's value map as it was (our guard
#: against leaking; the `dense` baseline is the paper's: goal box only, no such term).
DEFAULT_KEEP = 1.0
#: The factor on the solved update when a request gives none (W1 = W0 + s Lambda D): the peak
#: of rank one's mean generalisation along its strength curve in `evaluate` (docs/evaluation,
#: `recommended`); the least-squares update, met at the layer, undershoots the goal in pixels.
DEFAULT_STRENGTH = 2.0
#: A "rule" goal is also rebuilt wherever the context key fires on this many samples of the
#: statistics' latent stream (never a numbered sample, so never a held-out one).
RULE_SAMPLES = 128


@dataclass
class EditResult:
    """The delta of an executed edit, its solution report and the problem it solved."""

    delta: Delta
    solution: Solution
    problem: EditProblem

    @property
    def spec(self) -> LayerSpec:
        return self.problem.spec

    @property
    def context_key(self) -> torch.Tensor:
        return self.problem.context_key

    @property
    def threshold(self) -> float:
        return self.problem.threshold

    @property
    def truncation(self) -> float | None:
        return self.problem.truncation


def _sample_inputs(inputs: tuple, rows: list[int], batch: int) -> tuple:
    """The module inputs of some samples (`rows`) out of a batched forward pass."""
    return tuple(
        x[rows] if isinstance(x, torch.Tensor) and x.shape[:1] == (batch,) else x
        for x in inputs
    )


def context_keys(
    reading: LayerReading, rows: dict[Sample, int], masks: list[tuple[Selection, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys [n, C_in] under the context masks and their mask weights [n]."""
    keys, weights = [], []
    for selection, mask in masks:
        mask = mask.to(reading.keys.device)
        cells = mask > 0
        sample_keys = reading.keys[rows[selection.sample]]  # [C_in, h, w]
        keys.append(sample_keys[:, cells].T)
        weights.append(mask[cells])
    return torch.cat(keys), torch.cat(weights)


@dataclass
class ContextRule:
    """What the context selections define: directions D, the context key and its threshold."""

    directions: torch.Tensor
    key: torch.Tensor
    threshold: float


@one_thread()  # small dense linear algebra: see `threads`
def context_rule(
    stats: KeyStats,
    keys: torch.Tensor,
    weights: torch.Tensor,
    rank: int,
    linear_weights: bool = False,
) -> ContextRule:
    """D from context keys [n, C_in] (mask-weighted), the key u^T D and where it fires."""
    check_stats(stats, keys.shape[1])
    directions = context_directions(
        stats.second_moment, keys, weights, rank, linear_weights, stats.whitening
    )
    mean_key = (keys.double() * weights[:, None]).sum(0) / weights.sum()
    key = context_key(directions, mean_key)
    return ContextRule(directions, key.float(), firing_threshold(stats, key))


def fires_in_context(keys: torch.Tensor, weights: torch.Tensor, rule: ContextRule) -> float:
    """The share of the marked context (mask-weighted) where the context key fires."""
    fired = (keys.double() @ rule.key.double() > rule.threshold).double()
    return float((fired * weights.double()).sum() / weights.double().sum())


def check_request(generator: Generator, request: EditRequest) -> LayerSpec:
    """Refuse what the request asks of this model before any work: its layer, truncation,
    sample numbers, rank, erase channel count and masks; returns the layer."""
    spec = generator.layer(request.layer)
    generator.check_truncation(request.truncation)
    too_big = [n for n in request.samples() if isinstance(n, int) and n > generator.max_sample]
    if too_big:
        raise RewritingError(
            f"sample {too_big[0]} is out of range (0..{generator.max_sample} for this model)"
        )
    if request.rank > spec.key_channels:
        raise RewritingError(
            f"rank {request.rank} exceeds layer {spec.name}'s {spec.key_channels} key channels"
        )
    if request.erase is not None and request.erase > spec.key_channels:
        raise RewritingError(
            f"erase {request.erase} exceeds layer {spec.name}'s {spec.key_channels} key channels"
        )
    for selection in (request.copy, request.paste, *request.context):
        if selection is not None:
            mask_image(selection.mask, generator.image_size, selection.paper)
    for name, latent in request.latents.items():
        check_sample_latent(latent, generator, name)
    return spec


def check_stats(stats: KeyStats, channels: int) -> None:
    """Refuse key statistics of the wrong size or with non-finite values (a damaged cache)."""
    moment, sample = stats.second_moment, stats.key_sample
    if (
        moment.shape != (channels, channels)
        or sample.dim() != 2
        or sample.shape[1] != channels
        or stats.count < 1
        or not stats.finite
    ):
        raise RewritingError(
            f"the key statistics are unusable (C {list(moment.shape)} for {channels} key "
            f"channels, {stats.count} keys, or not finite): delete the statistics cache "
            f"{default_cache_dir()} and run again"
        )


def prepare_problem(
    generator: Generator,
    request: EditRequest,
    stack: EditStack | None = None,
    stats: KeyStats | None = None,
    stats_progress: Callable[[int, int], None] | None = None,
    keep: float = DEFAULT_KEEP,
) -> EditProblem:
    """Validate the request and read what the solve needs from the (edited) generator."""
    spec = check_request(generator, request)
    truncation = generator.check_truncation(request.truncation)

    def grids(selection: Selection) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(
            grid_mask(selection.mask, generator.image_size, grid, selection.paper, request.grid,
                      margin).to(generator.device)
            for grid, margin in ((spec.key_grid, spec.key_margin),
                                 (spec.value_grid, spec.value_margin))
        )

    paste_key_mask, paste_value_mask = grids(request.paste)
    copy_masks = grids(request.copy) if request.copy else None
    context = [(s, grids(s)[0]) for s in request.context] or [(request.paste, paste_key_mask)]

    weights = stack.weights() if stack else {}
    numbers = distinct(request.samples())
    rows = {n: i for i, n in enumerate(numbers)}
    z = sample_latents(generator, numbers, request.latents)
    reading = read_layer(generator, spec, z, truncation, weights)
    if stats is None:
        stats = key_stats(generator, spec, truncation, progress=stats_progress)
    stats = stats.to(generator.device)  # statistics made or read elsewhere compute here too

    # The authors scale a partially covered cell's whitened key by its mask value w.
    marked, marks = context_keys(reading, rows, context)
    rule = context_rule(stats, marked, marks, request.rank, request.grid == "paper")

    module = reading.module
    weight = weights.get(spec.weight, generator.parameter(spec.weight)).detach()
    b = rows[request.paste.sample]
    keys_b = reading.keys[b : b + 1]
    inputs_b = _sample_inputs(reading.inputs, [b], len(numbers))
    if request.erase is not None:
        masks = torch.stack([m for _, m in context])
        ctx_maps = reading.keys[[rows[s.sample] for s, _ in context]]
        channels = erase_channels(ctx_maps, masks, stats.key_energy, request.erase)
        erased = keys_b.clone()
        erased[:, channels] = 0
        with torch.no_grad():
            target = layer_value(module, erased, weight, inputs_b)[0]
        goal = erase_goal(target, paste_value_mask, spec.stride, channels)
    else:
        a = rows[request.copy.sample]
        goal = paste_goal(
            reading.values[a], copy_masks[1], reading.values[b], paste_value_mask, spec.stride,
            authors=request.method in PAPER_METHODS,
        )
    # The dense baseline and the authors' procedure: the loss covers the goal box only.
    goal.keep = 0.0 if request.method in ("dense", *PAPER_METHODS) else keep
    context_goals = []
    # The baselines (dense, the authors' procedure) keep the paper's goal on the paste sample.
    if request.goal in ("context", "rule") and request.method == "rank":
        value_masks = [(s, grids(s)[1]) for s in request.context]
        context_goals = joint_goals(
            reading, spec, goal, weight, rows, value_masks, request.paste.sample
        )
    if request.goal == "rule" and request.method == "rank":
        context_goals += rule_goals(
            generator, spec, goal, weight, rule, keys_b[0], truncation, weights
        )
    return EditProblem(
        request, spec, truncation, module, weight, keys_b, inputs_b, goal, rule.directions,
        rule.key, rule.threshold, stats, weights, context_goals,
        fires_in_context(marked, marks, rule),
    )


def joint_goals(
    reading: LayerReading,
    spec: LayerSpec,
    goal: Goal,
    weight: torch.Tensor,
    rows: dict[Sample, int],
    context: list[tuple[Selection, torch.Tensor]],
    paste: Sample,
) -> list[tuple[torch.Tensor, tuple, list[Goal]]]:
    """(keys, inputs, [goal]) for each context selection off the paste sample: the paste goal
    rebuilt there, centred on the selection as the paste goal is on the paste brush.

    `context` pairs each selection with its coverage on the value grid.
    """
    out = []
    for selection, mask in context:
        if selection.sample == paste:
            continue
        row = rows[selection.sample]
        keys = reading.keys[row : row + 1]
        inputs = _sample_inputs(reading.inputs, [row], len(rows))
        if goal.erased is not None:
            erased = keys.clone()
            erased[:, goal.erased] = 0
            with torch.no_grad():
                target = layer_value(reading.module, erased, weight, inputs)[0]
            placed = erase_goal(target, mask, spec.stride, goal.erased)
        else:
            top, left, bottom, right = bounding_box(mask)
            centre = ((top + bottom) / 2, (left + right) / 2)
            placed = place_object(goal.copied, goal.alpha, reading.values[row], centre, spec.stride)
        placed.keep = goal.keep
        out.append((keys, inputs, [placed]))
    return out


def rule_goals(
    generator: Generator,
    spec: LayerSpec,
    goal: Goal,
    weight: torch.Tensor,
    rule: ContextRule,
    paste_keys: torch.Tensor,
    truncation: float | None,
    weights: dict[str, torch.Tensor],
) -> list[tuple[torch.Tensor, tuple, list[Goal]]]:
    """Batches (keys, inputs, goals) of the RULE_SAMPLES unnumbered samples where the context
    key fires: the goal rebuilt there as the held-out measure rebuilds it (`transfer_goals`).
    On the unedited model (no `weights`) the layer's reading of them is kept in memory."""
    batches = [list(range(start, min(start + RENDER_BATCH, RULE_SAMPLES)))
               for start in range(0, RULE_SAMPLES, RENDER_BATCH)]
    readings = (base_readings(generator, spec, batches, truncation, STATS_SEED) if not weights
                else [None] * len(batches))
    out = []
    for numbers, reading in zip(batches, readings, strict=True):
        found = transfer_goals(
            generator, spec, goal, weight, rule.key, rule.threshold, paste_keys, numbers,
            truncation, weights, seed=STATS_SEED, reading=reading,
        )
        if found.rows:
            goals = [Goal(t, box, keep=goal.keep) for t, box in zip(found.targets, found.boxes,
                                                                       strict=True)]
            inputs = _sample_inputs(found.reading.inputs, found.rows, len(numbers))
            out.append((found.reading.keys[found.rows], inputs, goals))
    return out


def statistics_used(stats: KeyStats) -> dict[str, str | int]:
    """What reproduces the statistics an edit was solved with: sample count, seed, key count
    and, for early statistics, their shrinkage."""
    used: dict[str, str | int] = {"samples": int(stats.meta.get("samples", 0)),
                                  "seed": int(stats.meta.get("seed", STATS_SEED)),
                                  "count": stats.count}
    if "shrinkage" in stats.meta:
        used["shrinkage"] = stats.meta["shrinkage"]
    return used


def solved_strength(request: EditRequest) -> float:
    """The factor on the solved update: the request's or DEFAULT_STRENGTH for ours; the
    baselines run as solved (1)."""
    if request.method != "rank":
        return 1.0
    return DEFAULT_STRENGTH if request.strength is None else request.strength


def solved_goal(request: EditRequest) -> str:
    """The goal the solve actually met: the request's for ours, "paste" for the baselines."""
    return request.goal if request.method == "rank" else "paste"


def least_squares(problem: EditProblem) -> Solution:
    """`execute`'s solver for ours (`rank`) and the unconstrained baseline (`dense`): Lambda in
    closed form, or iterated for a layer nonlinear in W (`solve`)."""
    return solve(
        problem.module, problem.spec, problem.weight, problem.directions, problem.keys,
        problem.inputs, problem.goal, problem.stats.second_moment, problem.regularization,
        dense=problem.request.method == "dense", others=problem.context_goals,
    )


#: The solver each request method runs (as ROME's ALG_DICT names each algorithm's).
SOLVERS: dict[str, Callable[[EditProblem], Solution]] = {
    "rank": least_squares,
    "dense": least_squares,
    "paper": paper_solution,
    "paper-scaled": paper_solution,
}


def execute(
    generator: Generator,
    request: EditRequest,
    stack: EditStack | None = None,
    stats: KeyStats | None = None,
    stats_progress: Callable[[int, int], None] | None = None,
    max_delta_ratio: float = MAX_DELTA_RATIO,
    keep: float = DEFAULT_KEEP,
) -> EditResult:
    """Solve the request on top of `stack`'s edits and return the new delta (not applied).

    Settings the request leaves to the search (`rewriting.choose`) and that were not chosen take
    their defaults; the delta records the settings solved with. The layer readings run on the
    caller's threads; the linear algebra runs on one."""
    started = time.perf_counter()
    problem = prepare_problem(generator, request, stack, stats, stats_progress, keep)
    strength = solved_strength(request)
    directions = problem.directions
    solution = SOLVERS[request.method](problem)
    if not solution.delta_norm_ratio <= max_delta_ratio:
        raise RewritingError(
            f"ill-conditioned edit: ||dW|| / ||W0|| = {solution.delta_norm_ratio:.2f} exceeds "
            f"{max_delta_ratio}; paste a smaller region, add context where the rule applies, "
            "or raise the regularization"
        )
    spec = problem.spec
    metrics = {
        "residual": solution.residual,
        "delta_norm_ratio": solution.delta_norm_ratio,
        "rank": int(directions.shape[0]),
        "method": request.method,
        "solver": solution.solver,
        "regularization": problem.regularization,
        "strength": strength,
        "seconds_solve": solution.seconds,
        "seconds_execute": time.perf_counter() - started,
        "grid": request.grid,
        "goal": solved_goal(request),
        "goal_samples": 1 + sum(len(goals) for _, _, goals in problem.context_goals),
        "statistics": statistics_used(problem.stats),
        **solution.figures,
    }
    delta = Delta(
        layer=spec.name,
        weight=spec.weight,
        key_axis=spec.key_axis,
        lam=solution.lam.cpu().contiguous(),
        directions=directions.float().cpu().contiguous(),
        model=generator.name,
        weights_sha256=generator.weights_sha256,
        method=request.method,
        request=replace(request, layer=spec.name, strength=request.strength if
                        request.method != "rank" else strength, auto=()).to_json(),
        metrics=metrics,
        strength=strength,
        latents=dict(request.latents),
    )
    return EditResult(delta, solution, problem)
