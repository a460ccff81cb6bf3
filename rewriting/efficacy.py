"""Did the rule change? Efficacy, generalisation and specificity of an edit, beside a noise floor.

With goal G (values V* at the layer, and the image rendered from V*), weights before W0 and
after W1, and distances taken over the goal box (L2, values or pixels 0-255):

    closed(W1) = 1 - sum_n ||G_n - X_n(W1)|| / sum_n ||G_n - X_n(W0)||

- efficacy: `closed` on the paste sample with the request's own goal;
- generalisation: `closed` pooled over held-out samples where the context key fires, each with
  the goal rebuilt there (`transfer.transfer_goals`);
- specificity = 1 - mean |pixel change| outside the firing locations (whole samples where the
  key never fires included) / mean |pixel difference| between two held-out samples.

All are 1 when the goal is fully met or nothing changes elsewhere, 0 for no edit at all. The
noise floor is the same measures for random updates of the same layers, rank and ||dW||.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .latents import sample_latents
from .metrics import change_summary, fired_pixels, strongest
from .problem import EditProblem
from .readings import base_midway, base_readings, base_traced
from .render import Midway, midway, render_resumed
from .solve import expand
from .transfer import SampleGoals, goal_images, transfer_goals

#: The latent stream held-out sample numbers index.
HELD_OUT_SEED = 1
#: Random updates drawn for the noise floor.
FLOOR_SEEDS = 3
#: The names of what `RuleProbe.measure` reports.
MEASURES = frozenset({
    "efficacy", "efficacy_layer", "generalization", "generalization_layer", "specificity",
    "samples_firing", "typical_difference", "change_inside", "change_outside", "selectivity",
    "change_not_firing", "samples_not_firing", "fires_fraction", "held_out_samples",
    "artefacts",
})
Weights = Mapping[str, torch.Tensor]


def box_distances(
    goal: torch.Tensor, actual: torch.Tensor, boxes: Sequence[tuple[int, int, int, int]]
) -> torch.Tensor:
    """L2 distance [N] between goal and actual maps [N, C, H, W] over each sample's box."""
    return torch.stack([
        (g[:, top:bottom, left:right].double() - a[:, top:bottom, left:right].double()).norm()
        for g, a, (top, left, bottom, right) in zip(goal, actual, boxes, strict=True)
    ])


def fraction_closed(before: torch.Tensor, after: torch.Tensor) -> float:
    """1 - sum(after) / sum(before): the share of the distance to the goal an edit removed."""
    total = float(before.sum())
    return 1.0 - float(after.sum()) / total if total > 0 else 0.0


def strengthen(before: Weights, after: Weights, base: Weights, strength: float) -> dict:
    """Weights with the update scaled: W0 + s (W1 - W0) for every tensor `after` overrides."""
    return {
        name: before.get(name, base[name]) + strength * (tensor - before.get(name, base[name]))
        for name, tensor in after.items()
    }


@dataclass
class Rendered:
    """One set of forward passes under some weights: images [N + 1, H, W, 3] of the held-out
    samples and, last, the paste sample, with the layer's values for each."""

    images: torch.Tensor
    values: torch.Tensor

    @property
    def held_out(self) -> torch.Tensor:
        """The held-out samples' images [N, H, W, 3]."""
        return self.images[:-1]


@dataclass
class Baseline:
    """What a probe's measures compare against: the goals' images, the renders before the edit,
    specificity's unit, and the distances to the goals before the edit."""

    goal_images: dict[str, torch.Tensor]
    rendered: Rendered
    typical: float
    start: dict[str, tuple[torch.Tensor, torch.Tensor]]


class RuleProbe:
    """Everything measured before an edit (goals, goal images, originals), so that many edited
    weights (methods, strengths, random draws) are each measured by one `measure` call.

    Constructing one reads only where the rule fires (samples and goal boxes to show); the
    renders a measure compares against are made on the first `measure`."""

    def __init__(
        self, generator, problem: EditProblem, numbers: Sequence[int], seed: int = HELD_OUT_SEED
    ) -> None:
        self.generator, self.problem, self.seed = generator, problem, seed
        spec, truncation = problem.spec, problem.truncation
        self.before = dict(problem.base_weights)
        self.base = {k: v.detach() for k, v in generator.net.named_parameters()}
        self.numbers = list(numbers)
        goal = problem.goal
        paste = problem.request.paste.sample
        self.paste = SampleGoals([paste], goal.target[None], [goal.box], [0])
        # The unedited model's reading of the held-out samples is shared (`readings`).
        reading = (None if self.before else
                   base_readings(generator, spec, [self.numbers], truncation, seed)[0])
        self.held_out = transfer_goals(
            generator, spec, goal, problem.weight, problem.context_key, problem.threshold,
            problem.keys[0], self.numbers, truncation, self.before, seed, reading,
        )
        # How the context key fires on the held-out samples, from the reading the goals used.
        self.response = torch.einsum("nchw,c->nhw", self.held_out.reading.keys.double(),
                                     problem.context_key.double())
        self.fires = fired_pixels(self.response, problem.threshold, spec,
                                  generator.image_size).cpu()  # beside the images
        self.scale = generator.image_size[0] // spec.value_grid[0]
        self._made: Baseline | None = None
        self._start: Midway | None = None

    @property
    def goal_images(self) -> dict[str, torch.Tensor]:
        """The images rendered from the paste goal and the held-out goals."""
        return self._baseline().goal_images

    @property
    def original(self) -> torch.Tensor:
        """The held-out samples' images before the edit [N, H, W, 3]."""
        return self._baseline().rendered.held_out

    @property
    def typical(self) -> float:
        """Mean |pixel difference| between two held-out samples: specificity's unit."""
        return self._baseline().typical

    @property
    def start(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Distances to the goals before the edit, at the layer and in pixels."""
        return self._baseline().start

    def _baseline(self) -> Baseline:
        """What every measure compares against, rendered on first use."""
        if self._made is None:
            problem = self.problem
            held_out_z = self.generator.latents(self.held_out.numbers, self.seed)
            goal_pictures = {
                name: goal_images(self.generator, problem.spec, goals, problem.truncation,
                                  self.before, problem.request.latents, z)
                for name, goals, z in (("paste", self.paste, None),
                                       ("held_out", self.held_out, held_out_z))
            }
            rendered = self._run_before()
            original = rendered.held_out.float()
            typical = float((original - original.roll(1, 0)).abs().mean())
            made = Baseline(goal_pictures, rendered, typical, {})
            made.start.update({name: self._distances(name, rendered, made.goal_images)
                               for name in goal_pictures})
            self._made = made
        return self._made

    def _pixel_boxes(self, goals: SampleGoals) -> list[tuple[int, int, int, int]]:
        return [tuple(v * self.scale for v in box) for box in goals.boxes]

    def strongest(self, count: int) -> list[int]:
        """The `count` held-out samples where the context key fires most, before the edit."""
        return strongest(self.response, self.numbers, count)

    def goal_box(self, number: int, margin: int = 4) -> tuple[int, int, int, int] | None:
        """The pixel box where the rule's goal lies on held-out sample `number`, widened by
        `margin` pixels; None when the context key does not fire there."""
        if number not in self.held_out.numbers:
            return None
        box = self._pixel_boxes(self.held_out)[self.held_out.numbers.index(number)]
        height, width = self.generator.image_size
        top, left, bottom, right = box
        return (max(top - margin, 0), max(left - margin, 0), min(bottom + margin, height),
                min(right + margin, width))

    def run(self, weights: Weights) -> Rendered:
        """The held-out samples and the paste sample under `weights`: every measure's input
        (resumed at the edited layer where the weights differ only there)."""
        return Rendered(*render_resumed(self.generator, self._midway(), weights))

    def _midway(self) -> Midway:
        """The held-out and paste samples run up to the edited layer before the edit, made on
        first use."""
        if self._start is None:
            problem = self.problem
            module, truncation = problem.spec.module, problem.truncation
            if self._unedited_numbered():
                self._start = base_midway(self.generator, module, self._rows(), truncation)
            else:
                z = torch.cat([self.generator.latents(self.numbers, self.seed),
                               sample_latents(self.generator, self.paste.numbers,
                                              problem.request.latents)])
                self._start = midway(self.generator, z, module, truncation, self.before)
        return self._start

    def _run_before(self) -> Rendered:
        """`run` on the weights before the edit (the unedited model's from memory)."""
        if not self._unedited_numbered():
            return self.run(self.before)
        return Rendered(*base_traced(self.generator, self.problem.spec.module, self._rows(),
                                     self.problem.truncation))

    def _rows(self) -> list:
        """The samples every run renders: the held-out ones, then the paste sample."""
        return [*self.numbers, *self.paste.numbers]

    def _unedited_numbered(self) -> bool:
        """Whether the edit is on the unedited model and every sample is a numbered one of the
        held-out stream: then what comes before it is shared with other probes (`readings`)."""
        return (not self.before and self.seed == HELD_OUT_SEED
                and all(isinstance(n, int) for n in self._rows()))

    def _distances(
        self, name: str, rendered: Rendered, pictures: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Distances [N] to the `name` goals at the layer and in pixels (`pictures`: the goal
        images, if not yet kept)."""
        goals = self.paste if name == "paste" else self.held_out
        if not goals.numbers:
            return torch.zeros(0, device="cpu"), torch.zeros(0, device="cpu")
        rows = [len(self.numbers)] if name == "paste" else goals.rows
        layer = box_distances(goals.targets, rendered.values[rows], goals.boxes)
        pictures = self.goal_images if pictures is None else pictures
        pixels = box_distances(pictures[name].permute(0, 3, 1, 2),
                               rendered.images[rows].permute(0, 3, 1, 2),
                               self._pixel_boxes(goals))
        return layer, pixels

    def measure(self, after: Weights, rendered: Rendered | None = None) -> dict[str, float]:
        """Efficacy, generalisation (pixels and layer), specificity and the change summary;
        `rendered`: `run(after)`, if the caller already has it."""
        if rendered is None:
            rendered = self.run(after)
        out = {}
        for name, key in (("paste", "efficacy"), ("held_out", "generalization")):
            before_layer, before_pixels = self.start[name]
            after_layer, after_pixels = self._distances(name, rendered)
            out[key] = fraction_closed(before_pixels, after_pixels)
            out[f"{key}_layer"] = fraction_closed(before_layer, after_layer)
        change = change_summary(self.original, rendered.held_out, self.fires)
        out["specificity"] = 1.0 - change["change_outside"] / max(self.typical, 1e-9)
        out["samples_firing"] = len(self.held_out.numbers)
        out["typical_difference"] = self.typical
        return {**out, **change}

    def random_weights(self, after: Weights, rank: int | None, seed: int) -> dict:
        """A random update of every tensor `after` changes, with its norm: of `rank` along the
        layer's key axis (random orthonormal D, Gaussian Lambda), or dense when rank is None;
        drawn on the CPU, so the same on every device."""
        spec = self.problem.spec
        chooser = torch.Generator().manual_seed(seed)
        cpu64 = {"generator": chooser, "dtype": torch.float64, "device": "cpu"}
        out = {}
        for name, tensor in after.items():
            start = self.before.get(name, self.base[name])
            change = (tensor - start).double()
            if rank is not None and name == spec.weight:
                moved = change.movedim(spec.key_axis, 0)
                q, _ = torch.linalg.qr(torch.randn(moved.shape[0], rank, **cpu64))
                lam = torch.randn(rank, *moved.shape[1:], **cpu64)
                noise = expand(lam, q.T, spec.key_axis)
            else:
                noise = torch.randn(change.shape, **cpu64)
            noise = noise.to(change.device)
            noise = noise * change.norm() / noise.norm().clamp_min(1e-300)
            out[name] = (start.double() + noise).to(tensor.dtype)
        return out

    def floor(self, after: Weights, rank: int | None, seeds: int = FLOOR_SEEDS) -> dict:
        """The best of `seeds` random updates like `after` on efficacy, generalisation and
        specificity (each measure's maximum over the draws: the floor a method must beat)."""
        draws = [self.measure(self.random_weights(after, rank, s)) for s in range(seeds)]
        keys = ("efficacy", "generalization", "specificity", "efficacy_layer",
                "generalization_layer", "artefacts")
        return {k: max(d[k] for d in draws) for k in keys}

