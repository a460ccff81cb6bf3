"""A rank-one edit end to end on the tiny StyleGAN2 and Progressive GAN: solve, apply, revert."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rewriting.delta import EditStack
from rewriting.features import read_layer
from rewriting.request import EditRequest, Selection
from rewriting.rewrite import execute
from rewriting.stats import compute_key_stats
from zoo.loader import build_from_file

DATA = Path(__file__).parents[1] / "data"
SAMPLES = [0, 1, 7]

# family: file, layer, copy box, paste box (pixels; same size), truncation, expected solver.
# The tiny random ProGAN barely depends on z beyond its first blocks, so its key statistics are
# nearly degenerate; layer4 is one where this edit stays well-conditioned.
CASES = {
    "stylegan2": (
        "stylegan2_tiny_g_ema.pt", "layer8", [16, 16, 32, 32], [32, 24, 48, 40], 0.5, "iterative"
    ),
    "proggan": (
        "proggan_tiny.pth", "layer4", [8, 8, 16, 16], [16, 12, 24, 20], None, "closed-form"
    ),
}


def cells(box: list[int], scale: int) -> tuple[slice, slice]:
    """The value-grid cells of a pixel box, `scale` pixels per cell."""
    top, left, bottom, right = (v // scale for v in box)
    return slice(top, bottom), slice(left, right)


@pytest.mark.parametrize("family", CASES)
def test_rank_one_edit(family):
    path, layer, copy, paste, truncation, solver = CASES[family]
    gen = build_from_file(DATA / path, family)
    spec = gen.layer(layer)
    last = gen.layer(list(gen.layers)[-1])
    truncation = gen.check_truncation(truncation)
    z = gen.latents(SAMPLES)

    def outputs(weights: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The image, the edited layer's values and the last rewritable layer's values."""
        values = read_layer(gen, spec, z, truncation, weights).values
        deep = read_layer(gen, last, z, truncation, weights).values
        return gen.synthesize(z, truncation, weights), values, deep

    stats = compute_key_stats(gen, spec, truncation, samples=40)
    request = EditRequest(
        model=gen.name, layer=layer, copy=Selection(1, copy), paste=Selection(7, paste),
        context=(Selection(7, paste), Selection(3, paste)), truncation=truncation,
    )
    result = execute(gen, request, stats=stats)
    delta = result.delta
    assert result.solution.solver == solver and result.solution.residual < 0.9

    # The update is W1 - W0 = Lambda D with D one unit row: it lies in span(D).
    d = delta.directions.double()
    assert d.shape == (1, spec.key_channels)
    torch.testing.assert_close(d @ d.T, torch.eye(1, dtype=torch.float64))
    dw = delta.dense().double().movedim(spec.key_axis, -1)
    assert dw.shape[-1] == spec.key_channels and dw.norm() > 0
    assert (dw - dw @ d.T @ d).norm() < 1e-4 * dw.norm()

    base = outputs({})
    stack = EditStack(gen)
    stack.push(delta)
    edited = outputs(stack.weights())

    # Inside the paste box, the edited layer now writes values closer to the copied object.
    scale = gen.image_size[0] // spec.value_grid[0]
    copied = base[1][1][(slice(None), *cells(copy, scale))]
    before = (base[1][2][(slice(None), *cells(paste, scale))] - copied).norm()
    after = (edited[1][2][(slice(None), *cells(paste, scale))] - copied).norm()
    assert after < 0.9 * before
    assert (edited[1] - base[1]).abs().max() > 1e-3 and not torch.equal(edited[2], base[2])

    # Reverting restores the outputs exactly, whatever else is on the stack.
    stack.push(delta)
    stack.revert(1)
    assert all(torch.equal(a, b) for a, b in zip(outputs(stack.weights()), edited, strict=True))
    stack.revert(0)
    assert all(torch.equal(a, b) for a, b in zip(outputs(stack.weights()), base, strict=True))
