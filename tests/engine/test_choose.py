"""Settings chosen per request (`choose`) and the verdict on every edit (`verdict`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from edits import EYES_TO_EYES

from rewriting import choose
from rewriting.choose import VALIDATION, Setting, score, search
from rewriting.delta import EditStack
from rewriting.efficacy import RuleProbe
from rewriting.errors import RewritingError
from rewriting.metrics import held_out_samples
from rewriting.request import AUTO_SETTINGS, parse_request
from rewriting.rewrite import DEFAULT_STRENGTH, execute
from rewriting.stats import STATS_SEED, key_stats
from rewriting.verdict import assess, judge, took

#: A request that leaves goal and strength to the search (it gives layer and rank).
LEAVES_GOAL_AND_STRENGTH = {**EYES_TO_EYES, "rank": 1}
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def found(dcgan):
    return search(dcgan, parse_request(LEAVES_GOAL_AND_STRENGTH))


def test_left_out_settings_are_chosen_and_given_ones_kept():
    request = parse_request(LEAVES_GOAL_AND_STRENGTH)
    assert set(request.auto) == {"goal", "strength"}
    assert parse_request({**EYES_TO_EYES, "auto": True}).auto == AUTO_SETTINGS
    assert parse_request({**EYES_TO_EYES, "rank": "auto", "auto": False}).auto == ("rank",)
    fixed = parse_request({**LEAVES_GOAL_AND_STRENGTH, "auto": False})
    assert fixed.auto == () and fixed.goal == "rule" and fixed.strength is None
    # A solved request round-trips without anything left to the search.
    assert parse_request(Setting("main.6", 2, "paste", 1.0).apply(request).to_json()).auto == ()
    assert parse_request(request.to_json()).auto == request.auto


@pytest.mark.parametrize("data, says", [
    ({"method": "dense", "strength": 2}, "strength applies to the rank method only"),
    ({"method": "paper", "auto": True}, "needs the rank method"),
    ({"rank": "auto", "method": "dense"}, "needs the rank method"),
    ({"auto": "yes"}, '"auto" must be true or false'),
])
def test_baselines_run_as_defined_and_bad_auto_is_refused(data, says):
    with pytest.raises(RewritingError, match=says):
        parse_request({**EYES_TO_EYES, **data})


def test_baselines_leave_nothing_to_the_search_and_record_the_goal_they_solved(dcgan):
    request = parse_request({**LEAVES_GOAL_AND_STRENGTH, "method": "dense"})
    assert request.auto == ()
    result = execute(dcgan, request, stats=key_stats(dcgan, dcgan.layer("main.6")))
    assert result.delta.strength == 1.0
    assert result.delta.metrics["goal"] == "paste" and result.delta.metrics["strength"] == 1.0
    assert result.delta.request["method"] == "dense" and result.delta.request["auto"] is False


def test_execute_records_the_settings_it_solved_with(dcgan):
    request = parse_request(LEAVES_GOAL_AND_STRENGTH)
    result = execute(dcgan, request, stats=key_stats(dcgan, dcgan.layer("main.6")))
    stored = parse_request(result.delta.request)
    assert stored.auto == () and stored.strength == DEFAULT_STRENGTH
    assert (stored.layer, stored.rank, stored.goal) == ("main.6", 1, "rule")


def test_every_candidate_is_recorded_and_the_chosen_one_is_the_best_admissible(found):
    pairs = {(c.setting.rank, c.setting.goal) for c in found.candidates}
    assert pairs == {(1, "rule"), (1, "paste")}  # the rank is given: only goal varies
    assert {c.setting.layer for c in found.candidates} == {"main.6"}
    assert {c.setting.strength for c in found.candidates} == set(choose.STRENGTH_CHOICES)
    assert found.chosen in found.candidates and found.chosen.admissible
    judged = [c for c in found.candidates if c.floor is not None and c.admissible]
    assert all(c.score <= found.chosen.score + choose.TIE for c in judged)
    # Whatever was not judged against its floor could not have won.
    for c in found.candidates:
        if c.floor is None:
            assert c.score + choose.FLOOR_SLACK < found.chosen.score
    record = json.loads(json.dumps(found.record()))
    assert record["chosen"] == {"layer": "main.6", "rank": 1, "goal": found.chosen.setting.goal,
                                "strength": found.chosen.setting.strength}
    assert len(record["candidates"]) == len(found.candidates)
    assert record["validation_samples"] == len(VALIDATION) and record["seed"] == STATS_SEED


@pytest.mark.slow
def test_the_search_measures_on_validation_samples_never_the_held_out_ones(dcgan, monkeypatch):
    made = []
    original = RuleProbe.__init__

    def spy(self, generator, problem, numbers, seed=1):
        made.append((tuple(numbers), seed))
        original(self, generator, problem, numbers, seed)

    monkeypatch.setattr(RuleProbe, "__init__", spy)
    search(dcgan, parse_request({**EYES_TO_EYES, "goal": "auto", "auto": False}))
    assert made and all(m == (VALIDATION, STATS_SEED) for m in made)


def test_no_chosen_setting_has_more_artefacts_than_its_random_floor(found):
    chosen = found.chosen
    assert chosen.measures["artefacts"] <= chosen.floor["artefacts"]
    assert chosen.measures["specificity"] >= chosen.floor["specificity"] - choose.SPECIFICITY_SLACK


@pytest.mark.slow
def test_other_layers_are_tried_only_when_the_layer_asked_for_does_not_take(dcgan):
    request = parse_request({**EYES_TO_EYES, "layer": "auto", "goal": "auto", "auto": False})
    tried = search(dcgan, request)
    here = [c for c in tried.candidates if c.setting.layer == "main.6"]
    best_here = max(c.score for c in here)
    others = {c.setting.layer for c in tried.candidates} - {"main.6"}
    assert others == (set() if best_here >= 0 else {"main.3", "main.9"})


def _measures(efficacy, generalization, **more):
    return {"efficacy": efficacy, "generalization": generalization, "samples_firing": 20,
            "held_out_samples": 32, "generalization_layer": 0.1, **more}


FLOOR = {"efficacy": 0.02, "generalization": -0.01}


@pytest.mark.parametrize("efficacy, generalization, expected", [
    (0.17, 0.04, True), (0.16, 0.04, False), (0.30, 0.03, False), (0.5, 0.5, True),
])
def test_an_edit_takes_beyond_its_floor_by_the_margins(efficacy, generalization, expected):
    assert took(_measures(efficacy, generalization), FLOOR) is expected


def test_an_edit_that_did_not_take_says_why(dcgan, found):
    request = parse_request(LEAVES_GOAL_AND_STRENGTH)
    result = execute(dcgan, request, stats=key_stats(dcgan, dcgan.layer("main.6")))
    own = Setting("main.6", 1, "rule", DEFAULT_STRENGTH)
    verdict = judge(result.problem, 0.95, _measures(0.05, 0.0), FLOOR, found, own)
    assert not verdict.took and verdict.verdict.startswith("The edit did not take")
    assert verdict.reasons and "goal residual 0.95" in verdict.reasons[0]
    taken = judge(result.problem, 0.5, _measures(0.4, 0.2), FLOOR, found, own)
    assert taken.took and taken.reasons == [] and taken.advice is None
    assert taken.verdict.startswith("The edit took")
    # With nothing else measured, the reason is where the edit fell short.
    consistent = replace(result.problem, context_fires=1.0)
    quiet = judge(consistent, 0.5, _measures(0.05, 0.0), FLOOR, None, own)
    assert quiet.reasons == ["the update meets 50% of the goal at layer main.6, too little to "
                             "show in the pictures"]


def measured(dcgan, request):
    """An edit solved as `request` says, measured on 32 held-out samples as the report does:
    the edit, the held-out numbers, its measures and its random floor."""
    result = execute(dcgan, request, stats=key_stats(dcgan, dcgan.layer(request.layer)))
    weights = EditStack(dcgan, [result.delta]).weights()
    numbers = held_out_samples(32, request.samples())
    probe = RuleProbe(dcgan, result.problem, numbers)
    return result, numbers, probe.measure(weights), probe.floor(weights, request.rank)


@pytest.mark.slow
def test_the_advice_is_a_setting_checked_better_on_the_held_out_samples(dcgan, monkeypatch):
    """An edit that does not take (a mouth on a cheek at the fixed defaults) gets a search
    over all four settings, other layers included, and advice that the tool solved and
    measured on the held-out samples, where it scores better than the edit did."""
    cheek = json.loads((ROOT / "examples" / "evaluation" / "7-mouth-to-cheek.json").read_text())
    request = parse_request({**cheek, "auto": False})
    result, numbers, measures, floor = measured(dcgan, request)
    assert not took(measures, floor)
    verdict, found = assess(dcgan, result.problem, result.delta, measures, floor, numbers)
    assert found.varied == AUTO_SETTINGS
    assert {c.setting.layer for c in found.candidates} == {"main.3", "main.6", "main.9"}
    assert not verdict.took and verdict.reasons
    tip = verdict.advice
    assert tip is not None and tip["checked"].startswith("checked on 32 held-out samples")
    # Applying the advice gives what the check promised: a better score than the edit's.
    _, _, *advised = measured(dcgan, Setting(**tip["setting"]).apply(request))
    assert score(*advised) > score(measures, floor)


@pytest.mark.slow
def test_an_edit_that_took_gets_no_search_and_no_advice(dcgan, monkeypatch):
    result, numbers, measures, floor = measured(dcgan, parse_request({**EYES_TO_EYES,
                                                                      "auto": False}))
    assert took(measures, floor)
    monkeypatch.setattr("rewriting.verdict.search", None)  # never called
    verdict, found = assess(dcgan, result.problem, result.delta, measures, floor, numbers)
    assert verdict.took and found is None and verdict.advice is None


def test_a_search_refuses_what_the_request_asks_of_the_model_up_front(dcgan):
    request = replace(parse_request({**EYES_TO_EYES, "goal": "auto", "auto": False}),
                      rank=10_000)
    with pytest.raises(RewritingError, match="rank 10000 exceeds layer main.6's 256 key"):
        search(dcgan, request)


def test_the_artefact_measure_sees_stripes_not_smooth_change_nor_the_rules_own_place():
    from rewriting.metrics import high_frequency_change

    original = torch.full((2, 32, 32, 3), 100, dtype=torch.uint8)
    fires = torch.zeros(2, 32, 32, dtype=torch.bool)
    fires[:, 8:16, 8:16] = True
    smooth = original.clone()
    smooth[..., 0] += torch.linspace(0, 40, 32).to(torch.uint8)[None, None, :]
    stripes = original.clone()
    stripes[:, :, ::2] += 40
    inside = original.clone()
    inside[:, 9:15, 9:15] += 80  # a change where the rule fires, edges included
    assert high_frequency_change(original, original, fires) == 0
    assert high_frequency_change(original, inside, fires) == 0
    assert high_frequency_change(original, stripes, fires) > 20 * high_frequency_change(
        original, smooth, fires)
