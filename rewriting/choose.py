"""Settings chosen per request: the layer, rank, goal and strength an edit is solved with.

Each candidate setting c is solved and measured on validation samples of the statistics'
latent stream (numbers VALIDATION, never the numbered held-out samples the report uses), with
the goals rebuilt where the layer's rank-one context key fires (`efficacy.RuleProbe`):

    score(c) = min(efficacy(c) - floor_e(c) - TAKES_EFFICACY,
                   generalization(c) - floor_g(c) - TAKES_GENERALIZATION)

(positive: the edit takes on the validation samples), where the floors are the best of
FLOOR_DRAWS random updates of the same layer, rank and ||dW||. A candidate is admissible only
when it does no more damage than those random updates: artefacts (high-frequency change away
from where the rule fires) no more than their floor's, off-context change (specificity) at
most SPECIFICITY_SLACK worse. Floors are drawn lazily, best-hoping candidate first, until no
candidate without one could win (`FLOOR_SLACK`).
The chosen setting is the admissible candidate with the highest score; ties and near-ties
(within TIE) go to the earlier candidate, listed from the request's own values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from .delta import EditStack
from .efficacy import RuleProbe, strengthen
from .errors import RewritingError
from .generator import Generator
from .request import AUTO_SETTINGS, EditRequest
from .rewrite import (
    DEFAULT_STRENGTH,
    MAX_DELTA_RATIO,
    check_request,
    execute,
    prepare_problem,
)
from .stats import STATS_SEED, KeyStats, key_stats

#: Validation samples: numbers of the statistics' stream after the rule goals' RULE_SAMPLES.
VALIDATION = tuple(range(128, 160))
#: How far beyond its floor an edit must close the gap to take (the report's test, `verdict`).
TAKES_EFFICACY = 0.15
TAKES_GENERALIZATION = 0.05
#: Random updates drawn for each candidate's floor on the validation samples.
FLOOR_DRAWS = 1
#: How far below a random update's specificity an edit's may lie (one draw's spread on
#: examples/evaluation: the rule edits and their floors differ by 0.01-0.04 there).
SPECIFICITY_SLACK = 0.05
#: Scores this close count as equal (the plainer candidate wins).
TIE = 0.01
#: What the search varies, for each setting left to it.
RANK_CHOICES = (1, 3)
GOAL_CHOICES = ("rule", "paste")
STRENGTH_CHOICES = (1.0, 2.0, 3.0)

StatsFor = Callable[[str], KeyStats]


@dataclass(frozen=True)
class Setting:
    """One choice of the four settings an edit is solved with."""

    layer: str
    rank: int
    goal: str
    strength: float

    def label(self) -> str:
        """The setting in a few words, as a user would type it."""
        return (f"layer {self.layer}, rank {self.rank}, goal {self.goal}, "
                f"strength {self.strength:g}")

    def apply(self, request: EditRequest) -> EditRequest:
        """`request` solved with this setting (nothing left to the search)."""
        return replace(request, layer=self.layer, rank=self.rank, goal=self.goal,
                       strength=self.strength, auto=())


@dataclass
class Candidate:
    """A setting with its validation measures, its floors, its score and whether it was allowed."""

    setting: Setting
    measures: dict[str, float]
    floor: dict[str, float] | None
    residual: float
    score: float
    admissible: bool

    def record(self) -> dict:
        """The candidate as metrics.json keeps it (floor None: not drawn, the score is then
        the floorless one, and the candidate was not needed to choose)."""
        return {**asdict(self.setting), "score": round(self.score, 4),
                "admissible": self.admissible, "residual": round(self.residual, 4),
                **{k: round(self.measures[k], 4) for k in SCORED},
                "floor": None if self.floor is None else
                {k: round(self.floor[k], 4) for k in SCORED}}


#: The validation measures each candidate keeps.
SCORED = ("efficacy", "generalization", "specificity", "artefacts")


@dataclass
class Search:
    """The candidates tried for one request, the chosen one, and the seconds it took."""

    candidates: list[Candidate]
    chosen: Candidate
    seconds: float
    varied: tuple[str, ...] = ()

    def record(self) -> dict:
        """What metrics.json keeps: every candidate, the chosen setting and the time."""
        return {"chosen": asdict(self.chosen.setting), "seconds": round(self.seconds, 3),
                "varied": list(self.varied),
                "validation_samples": len(VALIDATION), "seed": STATS_SEED,
                "candidates": [c.record() for c in self.candidates]}

    def find(self, setting: Setting) -> Candidate | None:
        """The candidate of `setting`, if it was tried."""
        return next((c for c in self.candidates if c.setting == setting), None)


def score(measures: dict[str, float], floor: dict[str, float]) -> float:
    """How surely an edit takes: the smaller margin of efficacy and generalisation beyond
    their floors and thresholds (positive: it takes)."""
    return min(measures["efficacy"] - floor["efficacy"] - TAKES_EFFICACY,
               measures["generalization"] - floor["generalization"] - TAKES_GENERALIZATION)


def admissible(measures: dict[str, float], floor: dict[str, float]) -> bool:
    """Whether an edit damages no more than a random update of its norm: artefacts at most the
    floor's, and specificity at most SPECIFICITY_SLACK below the floor's."""
    return (measures["artefacts"] <= floor["artefacts"]
            and measures["specificity"] >= floor["specificity"] - SPECIFICITY_SLACK)


def starting_setting(generator: Generator, request: EditRequest) -> Setting:
    """The setting the request gives, with the defaults for what it leaves out or to the search."""
    return Setting(request.layer or generator.default_layer, request.rank, request.goal,
                   DEFAULT_STRENGTH if request.strength is None else request.strength)


def _ordered(start, choices, auto: bool) -> list:
    """The request's own value first, then the other choices when the setting is left to the
    search."""
    return [start, *[c for c in choices if c != start]] if auto else [start]


def solves(generator: Generator, request: EditRequest, layer: str) -> list[tuple[int, str]]:
    """The (rank, goal) pairs to solve at `layer`, plainest first."""
    start = starting_setting(generator, request)
    channels = generator.layers[layer].key_channels
    return [(rank, goal)
            for goal in _ordered(start.goal, GOAL_CHOICES, "goal" in request.auto)
            for rank in _ordered(start.rank, RANK_CHOICES, "rank" in request.auto)
            if rank <= channels]


def strengths(request: EditRequest) -> tuple[float, ...]:
    """The strengths to measure each solve at: the request's own (or the default), then the
    choices when strength is left to the search."""
    own = DEFAULT_STRENGTH if request.strength is None else request.strength
    return tuple(_ordered(own, STRENGTH_CHOICES, "strength" in request.auto))


@dataclass
class _Trial:
    """A measured setting whose floor is drawn only if the choice needs it."""

    setting: Setting
    measures: dict[str, float]
    residual: float
    solved: dict
    base: dict
    probe: RuleProbe
    floor: dict[str, float] | None = None

    @property
    def hopeful(self) -> float:
        """The score before the floor is drawn (floors of 0)."""
        return score(self.measures, ZERO_FLOOR)

    def judged(self) -> Candidate:
        """The trial as a candidate, its floor drawn now if not yet."""
        if self.floor is None:  # the weights made again: a trial keeps only its solve's
            weights = strengthen(self.probe.before, self.solved, self.base, self.setting.strength)
            self.floor = self.probe.floor(weights, self.setting.rank, FLOOR_DRAWS)
        return Candidate(self.setting, self.measures, self.floor, self.residual,
                         score(self.measures, self.floor), admissible(self.measures, self.floor))


ZERO_FLOOR = {"efficacy": 0.0, "generalization": 0.0}
#: How far a floor may lift a score above its floorless value (random updates of the edit's
#: norm reach |efficacy|, |generalisation| below this on examples/evaluation).
FLOOR_SLACK = 0.05


class _Searcher:
    """One search: the probes per layer, the trials measured so far."""

    def __init__(self, generator: Generator, request: EditRequest, stack: EditStack,
                 stats_for: StatsFor, log: Callable[[str], None] | None) -> None:
        self.generator, self.request, self.stack = generator, request, stack
        self.stats_for, self.log = stats_for, log
        self.base = {k: v.detach() for k, v in generator.net.named_parameters()}
        self.trials: list[_Trial] = []

    def layer(self, layer: str, pairs: list[tuple[int, str]]) -> None:
        """Solve and measure each (rank, goal) at `layer`, at each strength."""
        stats = self.stats_for(layer)
        fixed = replace(self.request, layer=layer, strength=1.0, auto=())
        reference = prepare_problem(self.generator, replace(fixed, rank=1, goal="paste"),
                                    self.stack, stats)
        probe = RuleProbe(self.generator, reference, VALIDATION, seed=STATS_SEED)
        for rank, goal in pairs:
            if self.log:
                self.log(f"trying layer {layer}, rank {rank}, goal {goal}")
            try:
                result = execute(self.generator, replace(fixed, rank=rank, goal=goal),
                                 self.stack, stats)
            except RewritingError:
                continue
            solved = EditStack(self.generator, [*self.stack.deltas, result.delta]).weights()
            for strength in strengths(self.request):
                if result.solution.delta_norm_ratio * strength > MAX_DELTA_RATIO:
                    continue
                weights = strengthen(probe.before, solved, self.base, strength)
                self.trials.append(_Trial(Setting(layer, rank, goal, strength),
                                          probe.measure(weights), result.solution.residual,
                                          solved, self.base, probe))

    def choose(self) -> tuple[list[Candidate], Candidate]:
        """Floors drawn best-hope first until no floorless score can beat the best admissible
        one; every trial as a candidate (floor None where not drawn) and the chosen one."""
        judged: dict[int, Candidate] = {}
        chosen = None
        for i in sorted(range(len(self.trials)), key=lambda i: -self.trials[i].hopeful):
            trial = self.trials[i]
            if chosen is not None and trial.hopeful + FLOOR_SLACK < chosen.score - TIE:
                break
            judged[i] = trial.judged()
            if judged[i].admissible and (chosen is None or judged[i].score > chosen.score):
                chosen = judged[i]
        everyone = [judged.get(i) or Candidate(t.setting, t.measures, None, t.residual,
                                               t.hopeful, False)
                    for i, t in enumerate(self.trials)]
        if chosen is None:  # nothing admissible: the most specific without artefacts
            for i, trial in enumerate(self.trials):
                everyone[i] = judged[i] = trial.judged()
            clean = [c for c in everyone if c.measures["artefacts"] <= c.floor["artefacts"]]
            chosen = max(clean or everyone,
                         key=lambda c: c.measures["specificity"] - c.floor["specificity"])
        # The plainest among near-ties (candidates are listed plainest first).
        chosen = next(c for c in everyone
                      if c.floor is not None and c.admissible and c.score >= chosen.score - TIE
                      ) if chosen.admissible else chosen
        return everyone, chosen


def neighbours(generator: Generator, layer: str) -> list[str]:
    """The rewritable layers just before and just after `layer`: a grid twice as coarse and
    twice as fine, where an object too small or too large for `layer`'s cells may fit."""
    names = list(generator.layers)
    at = names.index(layer)
    return [names[i] for i in (at - 1, at + 1) if 0 <= i < len(names)]


def search(
    generator: Generator,
    request: EditRequest,
    stack: EditStack | None = None,
    stats_for: StatsFor | None = None,
    log: Callable[[str], None] | None = None,
    widen: bool = False,
) -> Search:
    """Try the candidate settings of `request` (its `auto` ones varied, or all four when it has
    none) on the validation samples; the chosen one is the best admissible. The other layers
    are tried, with the best rank and goal of the request's layer, when that layer's best does
    not take on the validation samples, or always when `widen` (an edit known not to take)."""
    started = time.perf_counter()
    if not request.auto:
        request = replace(request, auto=AUTO_SETTINGS)
    truncation = generator.check_truncation(request.truncation)
    stats_for = stats_for or (lambda name: key_stats(generator, generator.layers[name],
                                                     truncation))
    start = starting_setting(generator, request)
    check_request(generator, replace(request, layer=start.layer))  # its own errors, up front
    searcher = _Searcher(generator, request, stack or EditStack(generator, []), stats_for, log)
    searcher.layer(start.layer, solves(generator, request, start.layer))
    if "layer" in request.auto:
        _, best_here = searcher.choose() if searcher.trials else (None, None)
        if widen or best_here is None or best_here.score < 0:
            pairs = ([(best_here.setting.rank, best_here.setting.goal)] if best_here
                     else solves(generator, request, start.layer))
            for layer in neighbours(generator, start.layer):
                searcher.layer(layer, pairs)
    if not searcher.trials:
        raise RewritingError("no setting the search tried could solve this request")
    everyone, chosen = searcher.choose()
    return Search(everyone, chosen, time.perf_counter() - started, request.auto)


def search_table(found: Search) -> str:
    """The candidates as a fixed-width table, the chosen one marked with '*'."""
    lines = [f"  {'layer':8} {'rank':>4} {'goal':>7} {'str.':>5} {'score':>7} {'effic.':>7} "
             f"{'general.':>8} {'specif.':>8} {'artef.':>7} {'resid.':>7}"]
    for c in found.candidates:
        s, m = c.setting, c.measures
        mark = "*" if c is found.chosen else ("x" if not c.admissible else " ")
        lines.append(f"{mark} {s.layer:8} {s.rank:4d} {s.goal:>7} {s.strength:5g} "
                     f"{c.score:+7.3f} {m['efficacy']:7.3f} {m['generalization']:8.3f} "
                     f"{m['specificity']:8.3f} {m['artefacts']:7.2f} {c.residual:7.3f}")
    lines.append(f"  (* chosen, x more damage than a random update; {len(VALIDATION)} validation "
                 f"samples, {found.seconds:.1f} s)")
    return "\n".join(lines)
