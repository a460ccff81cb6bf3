"""The methods the paper compares against, re-implemented to measure ours against them.

- `paper_procedure`: the authors' reference optimisation: Adam on the full layer weight
  (lr 0.05, 2001 steps), mean L1 loss between goal values and layer output over the goal box,
  and every 10 steps the update W - W0 projected back onto span(D).
- `finetune_all`: fine-tune every generator weight on the pasted image: pixel L1 on the pasted
  box plus 0.01 x a feature term, Adam. The paper's feature term is VGG16's MSE; this tool runs
  offline without VGG weights, so it uses the edited layer's own values on the goal box.
"""

from __future__ import annotations

import time

import torch

from .generator import Generator, layer_value
from .nethook import replace_output, trace
from .rewrite import EditProblem


def paper_procedure(
    problem: EditProblem, steps: int = 2001, lr: float = 0.05, project_every: int = 10
) -> tuple[torch.Tensor, float]:
    """Lambda [r, *rest] the reference optimisation reaches, and the seconds it took."""
    started = time.perf_counter()
    spec, weight0 = problem.spec, problem.weight
    directions = problem.rule_directions.to(weight0.dtype)
    region = problem.goal.region()
    target = problem.goal.target[:, region]

    def project(update: torch.Tensor) -> torch.Tensor:
        moved = update.movedim(spec.key_axis, 0)
        flat = moved.reshape(moved.shape[0], -1)
        return directions @ flat  # coordinates of the rows along D: [r, rest]

    weight = weight0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([weight], lr=lr)
    with torch.enable_grad():
        for step in range(steps):
            out = layer_value(problem.module, problem.keys, weight, problem.inputs)[0]
            loss = (out[:, region] - target).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % project_every == 0 or step == steps - 1:
                with torch.no_grad():
                    coords = project(weight - weight0)
                    moved = (directions.T @ coords).reshape(
                        weight0.movedim(spec.key_axis, 0).shape
                    )
                    weight.copy_(weight0 + moved.movedim(0, spec.key_axis))
    rest = weight0.movedim(spec.key_axis, 0).shape[1:]
    lam = project(weight.detach() - weight0).reshape(directions.shape[0], *rest)
    return lam, time.perf_counter() - started


def finetune_all(
    generator: Generator,
    problem: EditProblem,
    steps: int = 200,
    lr: float = 0.01,
    feature_weight: float = 0.01,
) -> tuple[dict[str, torch.Tensor], float]:
    """All generator weights after fine-tuning on the pasted image, and the seconds it took."""
    started = time.perf_counter()
    spec, goal, truncation = problem.spec, problem.goal, problem.truncation
    z = generator.latents([problem.request.paste.sample])
    base = {**dict(generator.net.named_parameters()), **problem.base_weights}
    target_net = generator.view(problem.base_weights)
    with replace_output(target_net, spec.module, lambda _inputs, _out: goal.target[None]):
        target_image = generator.synthesize(z, truncation, net=target_net)[0]
    scale = generator.image_size[0] // spec.value_grid[0]
    top, left, bottom, right = (v * scale for v in goal.box)
    region = goal.region()
    params = {k: v.detach().clone().requires_grad_(True) for k, v in base.items()}
    optimizer = torch.optim.Adam(params.values(), lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            net = generator.view(params)
            with trace(net, spec.module) as record:
                image = net(z, truncation=truncation)
            pixels = (image[0] - target_image)[:, top:bottom, left:right].abs().mean()
            feature = ((record.output[0] - goal.target)[:, region] ** 2).mean()
            loss = pixels + feature_weight * feature
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    tuned = {k: v.detach() for k, v in params.items()}
    return tuned, time.perf_counter() - started

