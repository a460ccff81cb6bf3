"""The authors' own procedure, which `execute` runs for the methods `paper` and `paper-scaled`.

As their reference code runs it (rewrite/ganrewrite.py): the layer evaluated on the key map
cropped to the goal box, mean L1 between its output and the goal values there, Adam on the full
layer weight (lr 0.05, 2001 steps), and after step 0, every 10th step and the last, W reset to
W0 + P(W - W0), P the projection of each weight row onto span(D) along the key axis.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch
from torch import nn

from .errors import RewritingError
from .generator import LayerSpec, layer_value
from .goal import Goal
from .problem import EditProblem
from .solve import Solution, expand, measured
from .threads import one_thread

#: The authors' learning rate, step count and projection interval.
PAPER_LR = 0.05
PAPER_STEPS = 2001
PAPER_PROJECT_EVERY = 10
#: The weight scale the authors' learning rate suits. Their layers (ProGAN, StyleGAN2) store
#: weights with an equalised learning rate: drawn N(0, 1), scaled by 1/sqrt(fan_in) only in the
#: forward pass. Adam moves every entry by about lr a step whatever the gradient's scale, so
#: lr 0.05 is 5 % of a stored weight's spread there, and far more on a plainly stored layer.
PAPER_WEIGHT_STD = 1.0


def scaled_lr(weight: torch.Tensor) -> float:
    """The authors' learning rate scaled to this weight: 0.05 x std(W0) / 1 (see above)."""
    return PAPER_LR * float(weight.detach().float().std()) / PAPER_WEIGHT_STD


#: The learning rate of each of the authors' methods, from the layer's weight W0.
LEARNING_RATES = {"paper": lambda weight: PAPER_LR, "paper-scaled": scaled_lr}


@dataclass
class PaperRun:
    """What the authors' optimisation reached: Lambda [r, *rest] and its L1 loss before/after."""

    lam: torch.Tensor
    l1_before: float
    l1_after: float
    lr: float
    seconds: float


def crop_to_goal(
    spec: LayerSpec, keys: torch.Tensor, inputs: tuple, box: tuple[int, int, int, int]
) -> tuple[torch.Tensor, tuple]:
    """The key map and module inputs cropped to the key cells under a value box (on the key
    grid): maps on the key grid to those cells, maps on the value grid to the box."""
    top, left, bottom, right = box
    s = spec.stride
    key_box = (top // s, left // s, bottom // s, right // s)

    def crop(x: object) -> object:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            return x
        if tuple(x.shape[-2:]) == tuple(spec.key_grid):
            rows, cols = (key_box[0], key_box[2]), (key_box[1], key_box[3])
        elif tuple(x.shape[-2:]) == tuple(spec.value_grid):
            rows, cols = (top, bottom), (left, right)
        else:
            return x
        return x[:, :, rows[0] : rows[1], cols[0] : cols[1]]

    return crop(keys), tuple(crop(x) for x in inputs)


def projected_adam(
    module: nn.Module,
    spec: LayerSpec,
    weight: torch.Tensor,
    directions: torch.Tensor,
    keys: torch.Tensor,
    inputs: tuple,
    goal: Goal,
    steps: int = PAPER_STEPS,
    lr: float = PAPER_LR,
    project_every: int = PAPER_PROJECT_EVERY,
) -> PaperRun:
    """The authors' optimisation of W for one goal; `keys` [1, C_in, h, w] is the whole key map."""
    started = time.perf_counter()
    top, left, bottom, right = goal.box
    crop_keys, crop_inputs = crop_to_goal(spec, keys, inputs, goal.box)
    target = goal.target[:, top:bottom, left:right]
    weight0 = weight.detach()
    directions = directions.to(weight0.dtype)

    def coordinates(update: torch.Tensor) -> torch.Tensor:
        return torch.tensordot(directions, update, dims=([1], [spec.key_axis]))

    def l1(current: torch.Tensor) -> torch.Tensor:
        out = layer_value(module, crop_keys, current, crop_inputs)[0]
        if out.shape != target.shape:
            raise RewritingError(
                f"layer {spec.name} gives {tuple(out.shape)} on the cropped key map, not the "
                f"goal's {tuple(target.shape)}"
            )
        return (out - target).abs().mean()

    with torch.no_grad():
        before = float(l1(weight0))
    current = weight0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([current], lr=lr)
    with torch.enable_grad(), one_thread():
        for step in range(steps):
            loss = l1(current)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % project_every == 0 or step == steps - 1:
                with torch.no_grad():
                    moved = coordinates(current - weight0)
                    current.copy_(weight0 + expand(moved, directions, spec.key_axis))
    with torch.no_grad():
        after = float(l1(current))
        lam = coordinates(current - weight0)
    return PaperRun(lam, before, after, lr, time.perf_counter() - started)


def paper_procedure(problem: EditProblem) -> PaperRun:
    """The authors' optimisation on a problem prepared for `paper` or `paper-scaled` (their
    goal), at that method's learning rate."""
    lr = LEARNING_RATES[problem.request.method](problem.weight)
    return projected_adam(
        problem.module, problem.spec, problem.weight, problem.rule_directions, problem.keys,
        problem.inputs, problem.goal, lr=lr,
    )


def paper_solution(problem: EditProblem) -> Solution:
    """`execute`'s solver for the authors' methods: their Lambda, measured as ours is, with
    its learning rate and L1 loss before and after."""
    run = paper_procedure(problem)
    solution = measured(
        problem.module, problem.spec, problem.weight, run.lam, problem.rule_directions,
        problem.keys, problem.inputs, problem.goal, run.seconds, "adam-projected",
    )
    return replace(solution, figures={"lr": run.lr, "l1_before": run.l1_before,
                                      "l1_after": run.l1_after})
