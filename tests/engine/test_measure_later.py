"""An edit is shown first and measured after: the same figures, kept only where the edit still
is; the faster solve paths give the solution of the plain ones."""

from __future__ import annotations

import threading

import numpy as np
import torch
from edits import EYES_TO_EYES
from torch import nn

from rewriting import solve
from rewriting.efficacy import MEASURES, RuleProbe
from rewriting.masks import mask_image
from rewriting.request import parse_request
from rewriting.rewrite import execute
from rewriting_app import session as ss
from rewriting_app.pictures import mask_url


def fresh_session() -> tuple[ss.Session, object]:
    session = ss.Session.start("dcgan-digiface")
    return session, ss.statistics(session)


def test_measures_after_the_picture_are_those_of_a_whole_execute():
    session, stats = fresh_session()
    request = parse_request(EYES_TO_EYES)
    whole, metrics, shown = ss.run_edit_shown(session, request, stats, 6)
    edited, shown_first, pending = ss.execute_shown(session, request, stats, 6)
    assert shown_first == shown
    assert not MEASURES & set(edited.stack.deltas[-1].metrics), "measured before asked"
    later = ss.measure(pending)
    assert MEASURES <= set(later)
    assert {k: later[k] for k in MEASURES} == {k: metrics[k] for k in MEASURES}
    kept = ss.with_measures(edited, pending, later)
    assert kept.stack.deltas[-1].metrics == later
    assert whole.stack.deltas[-1].metrics == metrics


def test_measures_never_bring_back_a_reverted_or_rescaled_edit():
    session, stats = fresh_session()
    edited, _, pending = ss.execute_shown(session, parse_request(EYES_TO_EYES), stats, 2)
    metrics = ss.measure(pending)
    reverted = edited.reverted(0)
    assert ss.with_measures(reverted, pending, metrics) is reverted
    rescaled = ss.with_measures(edited, pending, metrics).with_strength(0.5)
    assert ss.with_measures(rescaled, pending, metrics) is rescaled
    assert pending.holds(rescaled.stack.deltas[-1]), "a measured, rescaled edit is the same edit"
    # Rescaling drops what was measured at the old strength; measuring it again fills it.
    assert not MEASURES & set(rescaled.stack.deltas[-1].metrics)
    again = ss.measure(pending.rescaled(rescaled))
    assert again["strength"] == 0.5 and again["change_inside"] < metrics["change_inside"]


def test_a_probe_reads_where_the_rule_fires_and_renders_only_when_measuring(monkeypatch):
    session, stats = fresh_session()
    result = execute(session.generator, parse_request(EYES_TO_EYES), session.stack, stats)
    runs = []
    original_run = RuleProbe.run
    monkeypatch.setattr(RuleProbe, "run", lambda self, w: runs.append(1) or original_run(self, w))
    probe = RuleProbe(session.generator, result.problem, ss.HELD_OUT)
    assert probe.strongest(3) and runs == []
    edited = session.with_edit(result.delta)
    probe.measure(edited.weights())
    assert len(runs) == 1, "the unedited renders come from memory, the edited ones once"
    assert set(probe.measure(edited.weights())) <= MEASURES | {"layer"}


def test_joined_goal_batches_and_projected_keys_give_the_plain_solution():
    session, stats = fresh_session()
    request = parse_request(EYES_TO_EYES)
    problem = execute(session.generator, request, session.stack, stats).problem
    args = (problem.module, problem.spec, problem.weight, problem.directions, problem.keys,
            problem.inputs, problem.goal, stats.second_moment)
    fast = solve.solve(*args, others=problem.context_goals)

    class Plain(type(problem.module)):
        """The same convolution, not recognised as a plain one: the generic path."""

    plain_module = Plain.__new__(Plain)
    plain_module.__dict__.update(problem.module.__dict__)
    plain = solve.solve(plain_module, *args[1:], others=problem.context_goals)
    assert torch.allclose(fast.lam, plain.lam, rtol=1e-4, atol=1e-6)
    parts = [(problem.keys, problem.inputs, [problem.goal]), *problem.context_goals]
    joined = solve.joined(parts)
    assert len(joined) < len(parts) and sum(len(g) for _, _, g in joined) == sum(
        len(g) for _, _, g in parts)
    assert len(solve.joined(parts, limit=1)) == len(parts)
    assert isinstance(problem.module, nn.ConvTranspose2d)


def test_painted_masks_are_decoded_once_and_handed_out_as_copies():
    painted = np.zeros((64, 64), bool)
    painted[10:20, 12:30] = True
    url = mask_url(painted)
    first = mask_image(url, (64, 64))
    first.zero_()
    again = mask_image(url, (64, 64))
    assert torch.equal(again, torch.from_numpy(painted.astype(np.float32)))


def test_statistics_asked_for_at_once_are_computed_once(monkeypatch):
    session = ss.Session.start("dcgan-digiface")
    computed = []
    real = ss.key_stats

    def counting(*args, **kwargs):
        computed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ss, "key_stats", counting)
    monkeypatch.setattr(ss, "_stats", {})
    other = session.with_layer("main.3")
    found = []
    threads = [threading.Thread(target=lambda: found.append(ss.statistics(other)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(computed) == 1 and all(f is found[0] for f in found)
