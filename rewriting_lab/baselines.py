"""The evaluation-only baseline the paper compares against: fine-tuning every generator weight.

`finetune_all` fine-tunes on the pasted image: pixel L1 on the pasted box plus 0.01 x a feature
term, Adam. The paper's feature term is VGG16's MSE; this tool runs offline without VGG
weights, so it uses the edited layer's own values on the goal box. (The authors' own procedure,
which `execute` also runs, is `rewriting.paper`.)
"""

from __future__ import annotations

import time

import torch

from rewriting.generator import Generator
from rewriting.latents import sample_latents
from rewriting.nethook import replace_output, trace
from rewriting.problem import EditProblem


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
    z = sample_latents(generator, [problem.request.paste.sample], problem.request.latents)
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
