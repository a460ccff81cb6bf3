"""The authors' procedure (`method: paper`) against answers derived by hand, and the authors'
mask-to-grid rule and context weighting."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from rewriting.directions import context_directions
from rewriting.generator import LayerSpec
from rewriting.goal import Goal
from rewriting.masks import grid_mask
from rewriting.paper import PAPER_LR, projected_adam, scaled_lr
from rewriting.request import parse_request
from rewriting.rewrite import execute, prepare_problem

ROOT = Path(__file__).parents[2]


def test_projected_adam_reaches_the_l1_optimum_in_span_d():
    """A 1x1 convolution, 3 key channels, 2 output channels, 2 locations, D = [d].

    Keys k_j = c_j d + e_j with e_j orthogonal to d, so with W = W0 + lam d^T the output moves
    by lam * c_j (c = 2, 1). The goal asks channel 0 for +1.0 and +0.5: reachable exactly with
    lam_0 = 0.5. It asks channel 1 for +2 and +3: the L1 loss 2|1 - lam| + |3 - lam| is least at
    lam_1 = 1 (a weighted median; least squares would give 7/5), leaving a mean L1 of 2/4.
    """
    torch.manual_seed(0)
    d = torch.tensor([1.0, 2.0, 2.0]) / 3
    e1 = torch.tensor([2.0, -1.0, 0.0]) / 5**0.5
    e2 = torch.tensor([2.0, 0.0, -1.0]) / 5**0.5
    e1 = e1 - (e1 @ d) * d
    e2 = e2 - (e2 @ d) * d
    keys = torch.stack([2 * d + e1, 1 * d + 3 * e2], dim=1)[None, :, None, :]  # [1, 3, 1, 2]
    conv = nn.Conv2d(3, 2, 1, bias=False).requires_grad_(False)
    weight0 = conv.weight.detach().clone()
    base = nn.functional.conv2d(keys, weight0)[0]
    target = base + torch.tensor([[1.0, 0.5], [2.0, 3.0]])[:, None, :]
    spec = LayerSpec("conv", "conv", "conv.weight", 1, 3, 2, (1, 2), (1, 2), True)

    run = projected_adam(conv, spec, weight0, d[None], keys, (keys,), Goal(target, (0, 0, 1, 2)),
                         steps=2001, lr=0.01)

    assert run.lam.shape == (1, 2, 1, 1)
    assert run.lam.flatten().tolist() == pytest.approx([0.5, 1.0], abs=0.03)
    assert run.l1_before == pytest.approx((1.0 + 0.5 + 2.0 + 3.0) / 4, abs=1e-5)
    assert run.l1_after == pytest.approx(0.5, abs=0.02)
    # The answer lies in span(D): W - W0 = lam d^T exactly, nothing along the other key axes.
    update = run.lam.reshape(2, 1) * d[None, :]
    outside = update - (update @ d)[:, None] * d[None, :]
    assert float(outside.abs().max()) < 1e-7


def test_scaled_learning_rate_follows_the_weight_scale():
    weight = torch.tensor([-0.3, 0.0, 0.3])  # std 0.3
    assert scaled_lr(weight) == pytest.approx(PAPER_LR * 0.3)


def test_paper_grid_is_a_bilinear_resize_with_its_triangle_filter():
    """Image rows 40..55 onto 16 cells (4 pixels each): PIL's downscaling bilinear filter spans
    +-4 pixels around a cell centre with weights 1 - |x| / 4, so rows 9 and 14 get 1/8 and rows
    10 and 13 get 7/8 of the box; exact coverage would mark rows 10..13 only."""
    cells = grid_mask([40, 16, 56, 48], (64, 64), (16, 16), rule="paper")
    assert cells[:, 8].tolist()[8:16] == pytest.approx(
        [0, 0.125, 0.875, 1, 1, 0.875, 0.125, 0], abs=1 / 255
    )
    coverage = grid_mask([40, 16, 56, 48], (64, 64), (16, 16))
    assert (coverage > 0).nonzero()[:, 0].unique().tolist() == [10, 11, 12, 13]


def test_paper_weighting_of_partly_covered_context_cells():
    """With C = I: key e1 at weight 1 against two keys e2 at weight 0.6. Scaling whitened keys
    by sqrt(w) gives e2 the larger scatter (1.2 > 1); the authors' scaling by w gives e1 the
    larger (1 > 0.72)."""
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    weights = torch.tensor([1.0, 0.6, 0.6])
    ours = context_directions(torch.eye(2), keys, weights, 1)
    theirs = context_directions(torch.eye(2), keys, weights, 1, linear_weights=True)
    assert ours.abs()[0].tolist() == pytest.approx([0.0, 1.0], abs=1e-9)
    assert theirs.abs()[0].tolist() == pytest.approx([1.0, 0.0], abs=1e-9)


@pytest.mark.slow
def test_paper_method_on_the_dcgan(dcgan):
    request = parse_request(json.loads((ROOT / "examples" / "eye-to-mouth.json").read_text()))
    paper = replace(request, method="paper-scaled", grid="paper")
    problem = prepare_problem(dcgan, paper)
    # The authors' goal: the copy's positive box (bilinear grid) pasted, widened to key cells.
    assert problem.goal.box == (8, 2, 16, 14) and problem.goal.keep == 0.0
    assert int(prepare_problem(dcgan, request).goal.region().sum()) == 32
    result = execute(dcgan, paper)
    metrics = result.delta.metrics
    assert metrics["lr"] == pytest.approx(0.05 * float(problem.weight.std()))
    assert metrics["l1_after"] < 0.9 * metrics["l1_before"]
    assert metrics["residual"] < 1 and metrics["grid"] == "paper"
    assert result.delta.directions.shape == (1, 256)
