"""Edits on the real pretrained DCGAN: the rule changes where the context fires, not elsewhere."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from rewriting.delta import Delta, EditStack
from rewriting.generator import layer_value
from rewriting.metrics import change_inside_outside
from rewriting.render import render
from rewriting.request import parse_request
from rewriting.rewrite import DEFAULT_STRENGTH, execute
from rewriting.stats import key_stats

HELD_OUT = list(range(1000, 1064))
MOUTH = [40, 16, 56, 48]
EYES_TO_MOUTH = {
    "model": "dcgan-digiface", "layer": "main.6",
    "copy": {"sample": 1, "mask": [24, 16, 40, 48]},
    "paste": {"sample": 7, "mask": MOUTH},
    "context": [{"sample": s, "mask": MOUTH} for s in (7, 12)],
}


@pytest.fixture(scope="module")
def stats(dcgan):
    return key_stats(dcgan, dcgan.layer("main.6"))


def _change(dcgan, result):
    return change_inside_outside(
        dcgan, result.spec, result.context_key, result.threshold, HELD_OUT, None, {},
        EditStack(dcgan, [result.delta]).weights(),
    )


@pytest.fixture(scope="module")
def rank_one(dcgan, stats):
    return execute(dcgan, parse_request(EYES_TO_MOUTH), stats=stats)


def test_rank_one_edit_concentrates_where_the_context_fires(dcgan, rank_one):
    assert rank_one.solution.residual < 0.9
    assert rank_one.solution.delta_norm_ratio < 0.5
    change = _change(dcgan, rank_one)
    assert change["change_inside"] > 3 * change["change_outside"]
    assert change["change_inside"] > 5  # a visible change, not a no-op


@pytest.mark.slow
def test_dense_baseline_leaks_more_outside(dcgan, stats, rank_one):
    dense = execute(dcgan, parse_request({**EYES_TO_MOUTH, "method": "dense"}), stats=stats)
    assert dense.delta.rank == 256
    ours, theirs = _change(dcgan, rank_one), _change(dcgan, dense)
    assert theirs["change_outside"] > 1.5 * ours["change_outside"]
    assert theirs["selectivity"] < ours["selectivity"]


def test_joint_goal_moves_the_context_samples_towards_their_goals(dcgan, stats):
    """With "goal": "context" the copied object is also asked for on each context sample
    (rebuilt at its selection); those samples move towards it more than with the paste goal."""
    context = [{"sample": s, "mask": MOUTH} for s in (7, 12, 15, 20)]
    request = {**EYES_TO_MOUTH, "rank": 3, "context": context, "strength": 1}
    joint = execute(dcgan, parse_request({**request, "goal": "context"}), stats=stats)
    paste = execute(dcgan, parse_request({**request, "goal": "paste"}), stats=stats)
    assert joint.delta.metrics["goal_samples"] == 4 and paste.delta.metrics["goal_samples"] == 1
    problem = joint.problem
    assert [g.box for _, _, (g,) in problem.context_goals] == [problem.goal.box] * 3

    def closed(delta):
        before, after = 0.0, 0.0
        for keys, inputs, (goal,) in problem.context_goals:
            region = goal.region()
            for weight, total in ((problem.weight, "before"), (problem.weight + delta, "after")):
                values = layer_value(problem.module, keys, weight, inputs)[0]
                gap = float((goal.target - values)[:, region].norm())
                if total == "before":
                    before += gap
                else:
                    after += gap
        return 1 - after / before

    # Measured: 0.12 of the gap closed jointly, -0.02 (away from the goal) with the paste goal.
    assert closed(joint.delta.dense()) > closed(paste.delta.dense()) + 0.08
    assert closed(joint.delta.dense()) > 0.06
    assert joint.solution.residual < 0.8  # the paste sample's own goal is still met


def test_erase_edit_reduces_what_the_context_selects(dcgan, stats):
    request = parse_request({
        "model": "dcgan-digiface", "erase": 30,
        "paste": {"sample": 7, "mask": MOUTH},
        "context": [{"sample": s, "mask": MOUTH} for s in (7, 12, 15)],
    })
    result = execute(dcgan, request, stats=stats)
    assert result.solution.residual < 0.9
    assert _change(dcgan, result)["change_inside"] > 2


def test_same_request_twice_gives_a_bit_identical_delta(dcgan, stats, rank_one, tmp_path):
    again = execute(dcgan, parse_request(EYES_TO_MOUTH), stats=stats)
    assert torch.equal(again.delta.lam, rank_one.delta.lam)
    assert torch.equal(again.delta.directions, rank_one.delta.directions)
    rank_one.delta.save(tmp_path / "a.safetensors")
    again.delta.save(tmp_path / "b.safetensors")
    loaded = Delta.load(tmp_path / "b.safetensors")
    assert torch.equal(loaded.lam, rank_one.delta.lam)
    # The request as solved: what it left to the search at its defaults, nothing left open.
    solved = replace(parse_request(EYES_TO_MOUTH), strength=DEFAULT_STRENGTH, auto=())
    assert loaded.request == solved.to_json() == rank_one.delta.request
    assert json.loads(loaded.metadata()["request"])["layer"] == "main.6"


@pytest.mark.slow
def test_stack_revert_and_reload_are_exact(dcgan, stats, rank_one, tmp_path):
    numbers = [1000, 1001, 1002]
    original = render(dcgan, numbers)
    other = execute(dcgan, parse_request({**EYES_TO_MOUTH, "layer": "main.9"}))
    stack = EditStack(dcgan, [rank_one.delta])
    second = execute(dcgan, parse_request(EYES_TO_MOUTH | {"paste": {
        "sample": 12, "mask": MOUTH}}), stack=stack, stats=stats)
    stack.push(second.delta)  # same layer, on top of the first
    stack.push(other.delta)  # another layer
    assert set(stack.weights()) == {"main.6.weight", "main.9.weight"}
    assert not torch.equal(render(dcgan, numbers, None, stack.weights()), original)

    # Reverting the first edit leaves exactly what never applying it gives.
    stack.revert(0)
    never = EditStack(dcgan, [second.delta, other.delta])
    for name, tensor in stack.weights().items():
        assert torch.equal(tensor, never.weights()[name])
    stack.revert(0)
    stack.revert(0)
    assert stack.weights() == {}
    assert torch.equal(render(dcgan, numbers, None, stack.weights()), original)
    # The base model was never modified.
    assert torch.equal(render(dcgan, numbers), original)

    # Save and load round trip gives the same edited images.
    path = tmp_path / "delta.safetensors"
    rank_one.delta.save(path)
    reloaded = EditStack(dcgan, [Delta.load(path)])
    assert torch.equal(
        render(dcgan, numbers, None, reloaded.weights()),
        render(dcgan, numbers, None, EditStack(dcgan, [rank_one.delta]).weights()),
    )


def test_sample_n_does_not_depend_on_the_batch(dcgan):
    together = render(dcgan, range(40))
    for n in (0, 7, 23, 39):
        assert torch.equal(render(dcgan, [n])[0], together[n])
    assert torch.equal(render(dcgan, [39, 3, 17]), together[[39, 3, 17]])
