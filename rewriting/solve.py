"""Solve for the update W1 = W0 + Lambda D that makes the layer write the goal values.

    Lambda* = argmin sum_s ( ||V*_s - f(K_s; W0 + Lambda D)||^2         over s's goal box
                             + keep * ||V_s - f(K_s; W0 + Lambda D)||^2  over the rest of s )
              + gamma * P * sum_taps Lambda^T (D C D^T) Lambda

summed over the goal samples s: the paste sample and, for a joint goal, the context samples
(the goal centred on each context selection) and, for a rule goal, further samples with the
goal rebuilt wherever the context key fires on them. The keep term and the ridge guard
against an ill-posed goal (one the context key cannot reach): the first holds the rest of each
sample's values (`Goal.keep`), the second is the expected squared change the update makes to
values over the key distribution (C = E[k k^T]), scaled by the P goal locations of all samples.
When f is linear in W this is linear least squares, solved in closed form (the samples' normal
equations summed); otherwise Lambda alone is optimised (L-BFGS). With D = I and `dense=True`
it is the paper's unconstrained baseline, whose ridge is isotropic (it knows nothing of C).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .generator import LayerSpec, layer_value
from .goal import Goal
from .threads import one_thread

DEFAULT_REGULARIZATION = 0.1


def expand(lam: torch.Tensor, directions: torch.Tensor, key_axis: int) -> torch.Tensor:
    """dW = Lambda D along the key axis: `lam` is [r, *rest] (the weight with its key axis
    replaced by r), `directions` is D [r, C_in]."""
    dw = torch.tensordot(directions.to(lam.dtype), lam, dims=([0], [0]))
    return dw.movedim(0, key_axis)


@dataclass
class Solution:
    """Lambda [r, *rest], how well it meets the goal, and the solver's own figures (reported
    with the edit's metrics)."""

    lam: torch.Tensor
    residual: float
    delta_norm_ratio: float
    seconds: float
    solver: str
    figures: dict[str, float] = field(default_factory=dict)


def value_axis(spec: LayerSpec, weight: torch.Tensor) -> int:
    """The weight axis indexed by output (value) channels: the first non-key axis of that size."""
    for axis, size in enumerate(weight.shape):
        if axis != spec.key_axis and size == spec.value_channels:
            return axis
    raise ValueError(f"layer {spec.name}: no weight axis of size {spec.value_channels}")


def _lambda_layout(spec: LayerSpec, weight: torch.Tensor) -> tuple[int, list[int], int]:
    """Lambda's layout [r, *rest] (W's axes without the key axis): the output channels'
    position in it, its other axes' sizes, and the output channel count."""
    moved_axes = [a for a in range(weight.dim()) if a != spec.key_axis]
    out_pos = moved_axes.index(value_axis(spec, weight))
    rest = list(weight.movedim(spec.key_axis, 0).shape[1:])
    channels = rest.pop(out_pos)
    return out_pos, rest, channels


#: A batch of goal samples: key maps [n, C_in, h, w], the module inputs of those n samples,
#: one goal per sample, and W0's outputs there [n, C_out, H, W].
GoalBatch = tuple[torch.Tensor, tuple, list[Goal], torch.Tensor]


#: Goal samples evaluated together: single-sample batches (the paste and context goals) are
#: joined up to this many, as many as a render batch (more saves nothing measurable on the 64 px
#: model and multiplies the memory of a large layer's evaluation).
GOAL_BATCH = 16


def joined(
    parts: Sequence[tuple[torch.Tensor, tuple, list[Goal]]], limit: int = GOAL_BATCH
) -> list[tuple[torch.Tensor, tuple, list[Goal]]]:
    """Consecutive batches (keys [n, ...], inputs, n goals) joined into batches of at most
    `limit` samples, so that one layer evaluation serves many goals; per-sample inputs (a
    tensor of n rows) are joined, shared ones must be the same object."""
    out: list[tuple[torch.Tensor, tuple, list[Goal]]] = []
    for keys, inputs, goals in parts:
        if out and len(out[-1][2]) + len(goals) <= limit:
            together = _join(out[-1], (keys, inputs, goals))
            if together is not None:
                out[-1] = together
                continue
        out.append((keys, inputs, list(goals)))
    return out


def _join(
    a: tuple[torch.Tensor, tuple, list[Goal]], b: tuple[torch.Tensor, tuple, list[Goal]]
) -> tuple[torch.Tensor, tuple, list[Goal]] | None:
    """Two batches as one, or None when their keys or inputs do not line up."""
    (keys_a, inputs_a, goals_a), (keys_b, inputs_b, goals_b) = a, b
    if keys_a.shape[1:] != keys_b.shape[1:] or len(inputs_a) != len(inputs_b):
        return None
    inputs = []
    for x, y in zip(inputs_a, inputs_b, strict=True):
        if x is y:
            inputs.append(x)
        elif (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
              and x.shape[:1] == (len(goals_a),) and y.shape[:1] == (len(goals_b),)
              and x.shape[1:] == y.shape[1:]):
            inputs.append(torch.cat([x, y]))
        else:
            return None
    return torch.cat([keys_a, keys_b]), tuple(inputs), [*goals_a, *goals_b]


def _change(
    module: nn.Module,
    spec: LayerSpec,
    weight: torch.Tensor,
    directions: torch.Tensor,
    keys: torch.Tensor,
    inputs: tuple,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Lambda -> f(Lambda D) - f(0) on these keys: how an update changes the layer's output.

    A plain convolution is linear in its weight, so an update of rank r along the key axis acts
    on the keys projected onto its r directions: a convolution of r input channels, not C_in.
    """
    if type(module) in (nn.Conv2d, nn.ConvTranspose2d) and module.groups == 1:
        projected = torch.einsum("nchw,rc->nrhw", keys, directions.to(keys.dtype))
        if isinstance(module, nn.ConvTranspose2d):
            return lambda lam: F.conv_transpose2d(
                projected, lam.movedim(0, spec.key_axis), None, module.stride, module.padding,
                module.output_padding, 1, module.dilation)
        return lambda lam: F.conv2d(projected, lam.movedim(0, spec.key_axis), None,
                                    module.stride, module.padding, module.dilation, 1)
    with torch.no_grad():
        offset = layer_value(module, keys, torch.zeros_like(weight), inputs)
    return lambda lam: layer_value(
        module, keys, expand(lam, directions, spec.key_axis), inputs) - offset


def _normal_equations(
    module: nn.Module,
    spec: LayerSpec,
    weight: torch.Tensor,
    directions: torch.Tensor,
    batch: GoalBatch,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A^T A and A^T r of a batch's weighted least squares on the linear output, summed.

    Every output channel applies the same linear map A to its own slice of Lambda, so one
    layer evaluation yields as many columns of A as there are output channels: column m is
    read off channel m of f(dW_m) - f(0), where dW_m puts basis element m in that channel.
    """
    keys, inputs, goals, base = batch
    out_pos, rest, channels = _lambda_layout(spec, weight)
    size = directions.shape[0] * math.prod(rest)
    change = _change(module, spec, weight, directions, keys, inputs)
    with torch.no_grad():
        responses = []
        for first in range(0, size, channels):
            count = min(channels, size - first)
            basis = weight.new_zeros(channels, size)
            basis[torch.arange(count, device=weight.device),
                  torch.arange(first, first + count, device=weight.device)] = 1.0
            lam = basis.reshape(channels, directions.shape[0], *rest).movedim(0, 1 + out_pos)
            responses.append(change(lam)[:, :count])
        responses = torch.cat(responses, dim=1)  # [n, r * taps, H, W]
    gram, rhs = 0.0, 0.0
    # Rows at a time, so that a large layer's float64 copies stay within about 64 MiB.
    step = max(1, 2**23 // max(1, goals[0].target.numel() + responses[0].numel()))
    for first in range(0, len(goals), step):
        chunk = goals[first : first + step]
        rows = slice(first, first + len(chunk))
        weights = torch.stack([goal.weights() for goal in chunk]).double().flatten(1)  # [n, P]
        design = responses[rows].double().flatten(2)  # [n, r * taps, P]
        residual = (torch.stack([goal.target for goal in chunk]) - base[rows]).double()
        weighted = design * weights[:, None]
        gram = gram + torch.einsum("nkp,njp->kj", weighted, design)
        rhs = rhs + torch.einsum("nkp,ncp->kc", weighted, residual.flatten(2))
    return gram, rhs


def _closed_form(
    module: nn.Module,
    spec: LayerSpec,
    weight: torch.Tensor,
    directions: torch.Tensor,
    batches: list[GoalBatch],
    ridge: torch.Tensor,
) -> torch.Tensor:
    """Exact least squares on the linear output: the batches' normal equations summed."""
    out_pos, rest, channels = _lambda_layout(spec, weight)
    taps = math.prod(rest)
    gram, rhs = 0.0, 0.0
    for batch in batches:
        g, r = _normal_equations(module, spec, weight, directions, batch)
        gram, rhs = gram + g, rhs + r
    eye = torch.eye(taps, dtype=torch.float64, device=ridge.device)
    gram = gram + _points(batches) * torch.kron(ridge, eye)
    lam = torch.linalg.solve(gram, rhs)  # [r * taps, C_out]
    return lam.T.reshape(channels, directions.shape[0], *rest).movedim(0, 1 + out_pos).float()


def _points(batches: list[GoalBatch]) -> int:
    """The goal locations of all samples (the ridge's scale)."""
    return sum(int(goal.region().sum()) for _, _, goals, _ in batches for goal in goals)


def _iterative(
    module: nn.Module,
    spec: LayerSpec,
    weight: torch.Tensor,
    directions: torch.Tensor,
    batches: list[GoalBatch],
    ridge: torch.Tensor,
    steps: int,
) -> torch.Tensor:
    """Optimise Lambda alone (L-BFGS) on the same objective, for layers nonlinear in W."""
    points = _points(batches)
    rest = list(weight.movedim(spec.key_axis, 0).shape[1:])
    lam = weight.new_zeros(directions.shape[0], *rest).requires_grad_(True)
    ridge32 = ridge.to(weight.dtype)
    scale = max(sum(
        float((((goal.target - base[row]) ** 2) * goal.weights()).sum())
        for _, _, goals, base in batches for row, goal in enumerate(goals)
    ), 1e-12)
    optimizer = torch.optim.LBFGS(
        [lam], lr=1, max_iter=steps, history_size=20, line_search_fn="strong_wolfe"
    )

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        edited = weight + expand(lam, directions, spec.key_axis)
        flat = lam.reshape(lam.shape[0], -1)
        value = points * torch.einsum("ia,ij,ja->", flat, ridge32, flat)
        for keys, inputs, goals, _ in batches:
            out = layer_value(module, keys, edited, inputs)
            for row, goal in enumerate(goals):
                value = value + (((goal.target - out[row]) ** 2) * goal.weights()).sum()
        value = value / scale
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(loss)
    return lam.detach()


@one_thread()  # small dense linear algebra: see `threads`
def solve(
    module: nn.Module,
    spec: LayerSpec,
    weight: torch.Tensor,
    directions: torch.Tensor,
    keys: torch.Tensor,
    inputs: tuple,
    goal: Goal,
    second_moment: torch.Tensor,
    regularization: float = DEFAULT_REGULARIZATION,
    iterative: bool | None = None,
    steps: int = 200,
    dense: bool = False,
    others: Sequence[tuple[torch.Tensor, tuple, list[Goal]]] = (),
) -> Solution:
    """Lambda for one goal, in closed form when the layer is linear (or `iterative` is False).

    `keys` [1, C_in, h, w] and `inputs` are the paste sample's key map and module inputs;
    `weight` is the layer's current W0; `others` are further batches (keys [n, ...], inputs,
    n goals) solved jointly with it (the context and rule samples of a joint goal).
    """
    with torch.no_grad():
        # W0's outputs; computing them first also primes the layer's kernels at this input
        # shape, so `seconds` measures the solve rather than one-time kernel compilation.
        batches = [
            (k, i, g, layer_value(module, k, weight, i))
            for k, i, g in joined([(keys, inputs, [goal]), *others])
        ]
    start = time.perf_counter()
    directions = directions.to(weight.dtype)
    d64 = directions.double()
    ridge = regularization * (d64 @ second_moment.double() @ d64.T)
    if dense:
        # The unconstrained baseline knows nothing of C: an isotropic ridge of the same scale.
        scale = torch.diagonal(second_moment).double().mean()
        ridge = regularization * scale * torch.eye(len(d64), dtype=torch.float64,
                                                   device=d64.device)
    use_iterative = (not spec.linear) if iterative is None else iterative
    args = (module, spec, weight, directions, batches, ridge)
    lam = _iterative(*args, steps) if use_iterative else _closed_form(*args)
    seconds = time.perf_counter() - start
    return measured(
        module, spec, weight, lam, directions, keys, inputs, goal, seconds,
        "iterative" if use_iterative else "closed-form",
    )


def measured(
    module: nn.Module,
    spec: LayerSpec,
    weight: torch.Tensor,
    lam: torch.Tensor,
    directions: torch.Tensor,
    keys: torch.Tensor,
    inputs: tuple,
    goal: Goal,
    seconds: float,
    solver: str,
) -> Solution:
    """The solution Lambda with its relative residual on the goal box and ||dW|| / ||W0||."""
    delta = expand(lam, directions.to(lam.dtype), spec.key_axis)
    region = goal.region()
    with torch.no_grad():
        base = layer_value(module, keys, weight, inputs)[0]
        before = (goal.target - base)[:, region]
        after = (goal.target - layer_value(module, keys, weight + delta, inputs)[0])[:, region]
    return Solution(
        lam=lam,
        residual=float(after.norm() / before.norm().clamp_min(1e-12)),
        delta_norm_ratio=float(delta.norm() / weight.norm()),
        seconds=seconds,
        solver=solver,
    )
