"""Did the edit take? A verdict in one sentence, the measured reasons when it did not, and
advice the tool has checked.

An edit takes when, on the held-out samples the report uses, it closes at least
TAKES_EFFICACY of the gap to the goal on the paste sample and TAKES_GENERALIZATION on the
samples where the rule applies, each beyond its random floor (`choose.score` is the same test
on validation samples). Each reason is a measured figure: the solve's goal residual, where
the context key fires, the object's size on the layer's grid, and what the per-request search
found at a higher rank or a lower strength. Advice is a setting the search tried (chosen on
the validation samples) that, solved and measured as the report measures the edit, scores
better on the held-out samples than the edit did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from .choose import (
    TAKES_EFFICACY,
    TAKES_GENERALIZATION,
    TIE,
    Search,
    Setting,
    StatsFor,
    score,
    search,
)
from .delta import Delta, EditStack
from .efficacy import RuleProbe
from .generator import Generator
from .problem import EditProblem
from .request import AUTO_SETTINGS, EditRequest
from .rewrite import execute, solved_goal
from .stats import key_stats

#: A goal residual at least this high means the solve met almost none of the goal.
RESIDUAL_STUCK = 0.9
#: The context key should fire on at least this share of the marked context.
CONTEXT_FIRES = 0.5
#: Held-out samples the key should fire on for the rule to be seen on other samples.
MIN_SAMPLES_FIRING = 8
#: A higher rank explains a miss when it lowers the goal residual by at least this much.
RANK_GAIN = 0.1


#: The keys a verdict adds to an edit's metrics (with the search's record).
VERDICT_KEYS = frozenset({"took", "verdict", "reasons", "advice", "random_floor", "search"})


@dataclass
class Verdict:
    """Whether the edit took, one sentence saying so, the measured reasons, and the advice."""

    took: bool
    verdict: str
    reasons: list[str]
    advice: dict | None

    def record(self) -> dict:
        """The verdict as metrics.json, the API and the page carry it."""
        return asdict(self)


def took(measures: dict, floor: dict) -> bool:
    """Whether efficacy and generalisation each clear their floor by the margins."""
    return (measures["efficacy"] >= floor["efficacy"] + TAKES_EFFICACY
            and measures["generalization"] >= floor["generalization"] + TAKES_GENERALIZATION)


def _percent(value: float) -> str:
    return f"{round(100 * value) + 0:.0f}%"  # + 0: never "-0%"


def _reach(measures: dict, floor: dict) -> str:
    """Efficacy and generalisation in words, each beside its random floor."""
    return (f"{_percent(measures['efficacy'])} of the way on the pasted sample (random "
            f"{_percent(floor['efficacy'])}) and {_percent(measures['generalization'])} on the "
            f"others (random {_percent(floor['generalization'])})")


def summary(measures: dict, floor: dict) -> str:
    """What the edit reached, in plain words, with each random floor beside it."""
    reach = (f"{_percent(measures['efficacy'])} of the way on the pasted sample (random "
             f"{_percent(floor['efficacy'])}) and {_percent(measures['generalization'])} on "
             f"{measures['samples_firing']} other samples where the rule applies (random "
             f"{_percent(floor['generalization'])})")
    if took(measures, floor):
        return f"The edit took: it moved the pictures {reach}."
    if measures["efficacy"] < floor["efficacy"] + TAKES_EFFICACY:
        return f"The edit did not take: it moved the pictures only {reach}."
    return (f"The edit changed the pasted sample but did not carry over to other samples: "
            f"it moved the pictures {reach}.")


def reasons(problem: EditProblem, residual: float, measures: dict,
            search: Search | None, setting: Setting) -> list[str]:
    """The measured reasons an edit may not have taken, most telling first."""
    found = []
    if residual >= RESIDUAL_STUCK:
        found.append(f"the solve found almost no change of layer {problem.spec.name} that "
                     f"draws the copied part (goal residual {residual:.2f}; 1 means none)")
    if problem.context_fires < CONTEXT_FIRES:
        found.append(f"the rule's key fires on only {_percent(problem.context_fires)} of the "
                     "places marked as context, so the marks do not share one feature")
    if measures["samples_firing"] < MIN_SAMPLES_FIRING:
        found.append(f"the rule's key fires on only {measures['samples_firing']} of "
                     f"{measures['held_out_samples']} other samples")
    found += _grid_reason(problem)
    if search is not None:
        found += _search_reasons(search, setting, residual)
    return found or [_shortfall(problem, residual, measures)]


def _shortfall(problem: EditProblem, residual: float, measures: dict) -> str:
    """Where the edit fell short, at the layer, when no other reason was measured."""
    if measures["efficacy"] < TAKES_EFFICACY:
        return (f"the update meets {_percent(max(1 - residual, 0))} of the goal at layer "
                f"{problem.spec.name}, too little to show in the pictures")
    return (f"at layer {problem.spec.name} the rule carries over to the other samples only "
            f"{_percent(measures['generalization_layer'])} of the way")


def _grid_reason(problem: EditProblem) -> list[str]:
    """The object's extent in cells of the layer's key grid, when it is under one cell or over
    half the grid."""
    top, left, bottom, right = problem.goal.box
    stride = problem.spec.stride
    height, width = (bottom - top) / stride, (right - left) / stride
    rows, columns = problem.spec.key_grid
    if min(height, width) < 1:
        return [f"the copied part is smaller than one cell of layer {problem.spec.name}'s "
                f"{rows}x{columns} grid"]
    if height * width > rows * columns / 2:
        return [f"the copied part covers {height * width:.0f} of the {rows * columns} cells of "
                f"layer {problem.spec.name}'s grid"]
    return []


def _search_reasons(search: Search, setting: Setting, residual: float) -> list[str]:
    """What the search measured at a higher rank and at lower strengths of the same setting."""
    found = []
    higher = [c for c in search.candidates
              if (c.setting.layer, c.setting.goal) == (setting.layer, setting.goal)
              and c.setting.rank > setting.rank and c.residual <= residual - RANK_GAIN]
    if higher:
        best = min(higher, key=lambda c: c.residual)
        found.append(f"rank {setting.rank} cannot paint the whole object: rank "
                     f"{best.setting.rank} meets more of it (goal residual {best.residual:.2f} "
                     f"instead of {residual:.2f})")
    own = search.find(setting)
    weaker = [c for c in search.candidates
              if c.setting == Setting(setting.layer, setting.rank, setting.goal, c.setting.strength)
              and c.setting.strength < setting.strength]
    if own is not None and weaker:
        best = max(weaker, key=lambda c: c.measures["efficacy"])
        if best.measures["efficacy"] > own.measures["efficacy"] + TIE:
            found.append(f"the update overshoots at strength {setting.strength:g}: at "
                         f"{best.setting.strength:g} it gets {_percent(best.measures['efficacy'])}"
                         f" of the way on the pasted sample instead of "
                         f"{_percent(own.measures['efficacy'])}")
    return found


#: Candidates of the search checked on the held-out samples, best validation score first.
ADVICE_TRIES = 3


def checked_advice(
    generator: Generator,
    request: EditRequest,
    stack: EditStack,
    found: Search,
    setting: Setting,
    own: tuple[dict, dict],
    held_out: Sequence[int],
    stats_for: StatsFor,
) -> dict | None:
    """The first of the search's best other settings (at most ADVICE_TRIES, by validation
    score) that, solved and measured as the report measures the edit, scores better on the
    held-out samples than the edit's own (`own`: its measures and floor), with no more
    artefacts than its random floor's; None when none does."""
    own_score = score(*own)
    others = sorted((c for c in found.candidates if c.setting != setting
                     and (c.floor is None or c.admissible)), key=lambda c: -c.score)
    for candidate in others[:ADVICE_TRIES]:
        tried = candidate.setting
        result = execute(generator, tried.apply(request), stack, stats_for(tried.layer))
        weights = EditStack(generator, [*stack.deltas, result.delta]).weights()
        probe = RuleProbe(generator, result.problem, held_out)
        measures = probe.measure(weights)
        floor = probe.floor(weights, tried.rank)
        if (score(measures, floor) > own_score + TIE
                and measures["artefacts"] <= floor["artefacts"]):
            takes = took(measures, floor)
            checked = (f"checked on {len(held_out)} held-out samples: {_reach(measures, floor)}, "
                       f"instead of {_reach(*own)}"
                       + ("; it takes" if takes else "; closer, though it does not take"))
            return {"setting": asdict(tried), "label": tried.label(), "checked": checked,
                    "takes": takes}
    return None


def judge(problem: EditProblem, residual: float, measures: dict, floor: dict,
          search: Search | None, setting: Setting, advice: dict | None = None) -> Verdict:
    """The edit's verdict from its measures on the held-out samples (the search, if run, for
    the reasons; `advice`, from `checked_advice`)."""
    if took(measures, floor):
        return Verdict(True, summary(measures, floor), [], None)
    return Verdict(False, summary(measures, floor),
                   reasons(problem, residual, measures, search, setting), advice)


def executed_setting(problem: EditProblem, delta: Delta) -> Setting:
    """The setting an executed edit was solved with (at its current strength)."""
    return Setting(problem.spec.name, int(delta.rank), solved_goal(problem.request),
                   float(delta.strength))


def assess(
    generator: Generator,
    problem: EditProblem,
    delta: Delta,
    measures: dict,
    floor: dict,
    held_out: Sequence[int],
    stack: EditStack | None = None,
    found: Search | None = None,
    stats_for: StatsFor | None = None,
) -> tuple[Verdict, Search | None]:
    """The verdict of an executed edit (`delta`, solved for `problem` on top of `stack`,
    measured on `held_out`). When it did not take, the search runs over all four settings from
    the edit's own (unless it already did), its other layers included, and its best settings
    are checked on the held-out samples for advice (ours only: the baselines run as defined)."""
    setting = executed_setting(problem, delta)
    if took(measures, floor) or problem.request.method != "rank":
        return judge(problem, float(delta.metrics["residual"]), measures, floor, found,
                     setting), found
    stack = stack or EditStack(generator, [])
    truncation = generator.check_truncation(problem.request.truncation)
    stats_for = stats_for or (lambda name: key_stats(generator, generator.layers[name],
                                                     truncation))
    if found is None or found.varied != AUTO_SETTINGS:
        start = replace(setting.apply(problem.request), auto=AUTO_SETTINGS)
        found = search(generator, start, stack, stats_for, widen=True)
    tip = checked_advice(generator, problem.request, stack, found, setting, (measures, floor),
                         held_out, stats_for)
    return judge(problem, float(delta.metrics["residual"]), measures, floor, found, setting,
                 tip), found
