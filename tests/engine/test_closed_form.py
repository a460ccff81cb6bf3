"""The linear case against the paper's closed form W1 = W0 + Lambda d^T, d = C^{-1} k*."""

from __future__ import annotations

import torch
from toy import toy_generator

from rewriting.delta import EditStack
from rewriting.features import read_layer
from rewriting.request import parse_request
from rewriting.rewrite import execute
from rewriting.stats import compute_key_stats


def _edit(generator, stats, rank: int, context: list[dict], size: int = 1, reg: float = 0.0):
    request = parse_request({
        "model": "toy", "rank": rank, "regularization": reg, "goal": "paste", "strength": 1,
        "copy": {"sample": 3, "mask": [1, 1, 1 + size, 1 + size]},
        "paste": {"sample": 5, "mask": [2, 2, 2 + size, 2 + size]},
        "context": context,
    })
    return execute(generator, request, stats=stats, keep=0.0, max_delta_ratio=1e9)


def test_rank_one_insert_meets_the_constraint_and_spares_orthogonal_keys():
    generator = toy_generator()
    spec = generator.layer(None)
    stats = compute_key_stats(generator, spec, samples=200)
    result = _edit(generator, stats, 1, [])
    reading = read_layer(generator, spec, generator.latents([3, 5]), None)
    k_star = reading.keys[1, :, 2, 2].double()
    v_star = reading.values[0, :, 1, 1].double()
    w0 = generator.parameter(spec.weight)[:, :, 0, 0].double()
    w1 = EditStack(generator, [result.delta]).weights()[spec.weight][:, :, 0, 0].double()
    bias = generator.parameter("memory.bias").double()

    # The new pair is stored: W1 k* (+ the layer's bias) = v*.
    assert torch.allclose(w1 @ k_star + bias, v_star, atol=1e-5)
    assert result.solution.residual < 1e-5
    # The direction is C^{-1} k*, and the update is rank one along it.
    d = torch.linalg.solve(stats.second_moment, k_star)
    direction = result.delta.directions[0].double()
    assert torch.allclose(direction, d / d.norm(), atol=1e-6)
    assert torch.linalg.matrix_rank(w1 - w0, atol=1e-5).item() == 1
    # Keys orthogonal to k* in the C^{-1} inner product are recalled exactly as before.
    for seed in range(5):
        k = torch.randn(spec.key_channels, generator=torch.Generator().manual_seed(seed)).double()
        k_perp = k - (d @ k) / (d @ d) * d
        assert abs(float(k_star @ torch.linalg.solve(stats.second_moment, k_perp))) < 1e-8
        assert torch.allclose(w1 @ k_perp, w0 @ k_perp, atol=1e-6)


def test_rank_r_update_lies_in_the_span_of_the_directions():
    generator = toy_generator()
    spec = generator.layer(None)
    stats = compute_key_stats(generator, spec, samples=200)
    context = [{"sample": s, "mask": [0, 0, 4, 4]} for s in (5, 9)]
    result = _edit(generator, stats, 3, context, size=2, reg=1e-3)
    directions = result.delta.directions.double()
    assert torch.allclose(directions @ directions.T, torch.eye(3, dtype=torch.float64), atol=1e-5)
    dw = result.delta.dense()[:, :, 0, 0].double()  # [out, in]
    assert torch.linalg.matrix_rank(dw, atol=1e-6).item() == 3
    # Every row of dW (a vector over key channels) lies in span(D).
    projected = dw @ directions.T @ directions
    assert torch.allclose(projected, dw, atol=1e-6)


def test_iterative_solver_agrees_with_the_closed_form():
    from rewriting.solve import solve

    generator = toy_generator()
    spec = generator.layer(None)
    stats = compute_key_stats(generator, spec, samples=200)
    result = _edit(generator, stats, 1, [])
    reading = read_layer(generator, spec, generator.latents([3, 5]), None)
    from rewriting.goal import Goal

    target = reading.values[1].clone()
    target[:, 2, 2] = reading.values[0, :, 1, 1]
    goal = Goal(target, (2, 2, 3, 3))
    module = generator.net.get_submodule(spec.module)
    weight = generator.parameter(spec.weight)
    iterative = solve(
        module, spec, weight, result.delta.directions, reading.keys[1:2], (reading.keys[1:2],),
        goal, stats.second_moment, regularization=0.0, iterative=True,
    )
    assert iterative.solver == "iterative"
    assert iterative.residual < 1e-3
    assert torch.allclose(iterative.lam, result.delta.lam, atol=1e-3)


def test_joint_goal_solves_the_summed_least_squares_of_a_worked_example():
    """Two samples, one cell each, a fixed direction d, no ridge: the rank-one magnitude is
    lambda = sum_s (v*_s - W0 k_s)(d . k_s) / sum_s (d . k_s)^2, derived by hand."""
    from rewriting.goal import Goal
    from rewriting.solve import solve

    generator = toy_generator()
    spec = generator.layer(None)
    stats = compute_key_stats(generator, spec, samples=200)
    reading = read_layer(generator, spec, generator.latents([3, 5, 9]), None)
    module = generator.net.get_submodule(spec.module)
    weight = generator.parameter(spec.weight)
    d = torch.nn.functional.normalize(torch.randn(1, spec.key_channels,
                                                  generator=torch.Generator().manual_seed(0)))
    goals = []
    for row, cell in ((1, (2, 2)), (2, (1, 3))):
        target = reading.values[row].clone()
        target[:, cell[0], cell[1]] = reading.values[0, :, 1, 1]
        goals.append((reading.keys[row : row + 1], (reading.keys[row : row + 1],),
                      Goal(target, (cell[0], cell[1], cell[0] + 1, cell[1] + 1))))
    joint = solve(module, spec, weight, d, *goals[0], stats.second_moment, 0.0,
                  others=[(k, i, [g]) for k, i, g in goals[1:]])

    w0 = weight[:, :, 0, 0].double()
    bias = generator.parameter("memory.bias").double()
    numerator, denominator = 0.0, 0.0
    for keys, _, goal in goals:
        top, left = goal.box[:2]
        k = keys[0, :, top, left].double()
        gap = goal.target[:, top, left].double() - (w0 @ k + bias)
        numerator = numerator + gap * float(d[0].double() @ k)
        denominator += float(d[0].double() @ k) ** 2
    expected = numerator / denominator
    assert torch.allclose(joint.lam.reshape(-1).double(), expected, atol=1e-5)
    # Alone, the first sample's goal gives a different magnitude: the second sample counts.
    alone = solve(module, spec, weight, d, *goals[0], stats.second_moment, 0.0)
    assert not torch.allclose(alone.lam.reshape(-1).double(), expected, atol=1e-3)
    # The iterative solver minimises the same summed objective.
    iterative = solve(module, spec, weight, d, *goals[0], stats.second_moment, 0.0,
                      iterative=True, others=[(k, i, [g]) for k, i, g in goals[1:]])
    assert torch.allclose(iterative.lam, joint.lam, atol=1e-3)
    # Samples given as one batch (keys stacked, one goal per row) are the same equations.
    keys = torch.cat([k for k, _, _ in goals])
    batched = solve(module, spec, weight, d, *goals[0], stats.second_moment, 0.0,
                    others=[(keys, (keys,), [g for _, _, g in goals])])
    twice = solve(module, spec, weight, d, *goals[0], stats.second_moment, 0.0,
                  others=[(k, i, [g]) for k, i, g in goals])
    assert torch.allclose(batched.lam, twice.lam, atol=1e-6)
    assert not torch.allclose(batched.lam, joint.lam, atol=1e-4)
