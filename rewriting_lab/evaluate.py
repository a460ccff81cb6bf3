"""Quality of an edit against the paper's baselines, on a fixed set of requests.

Every method solves the same request (the same goal, the same context); all are measured on
the same held-out samples, the same firing locations and the same goals rebuilt where the
rank-one context key fires (`efficacy.RuleProbe`): efficacy, generalisation and specificity,
each beside the best of several random updates of the method's layers, rank and ||dW||; the
residual, the change inside and outside where the key fires and their ratio (selectivity),
||dW|| / ||W0|| and seconds. The curves vary the strength (and, for the closed forms, the
regularisation); each method's pick is the peak of its mean generalisation along the strength
curve at its default regularisation (rank one's pick is `rewrite.DEFAULT_STRENGTH`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from rewriting.atomic import as_json, write_folder
from rewriting.choose import search
from rewriting.delta import EditStack
from rewriting.efficacy import RuleProbe, strengthen
from rewriting.features import read_layer
from rewriting.generator import Generator
from rewriting.latents import sample_latents
from rewriting.metrics import held_out_samples
from rewriting.paper import paper_procedure
from rewriting.problem import DENSE_REGULARIZATION, EditProblem
from rewriting.request import EditRequest
from rewriting.rewrite import DEFAULT_STRENGTH, execute, prepare_problem
from rewriting.solve import DEFAULT_REGULARIZATION, expand
from rewriting.stats import key_stats
from rewriting.suggest import SPECIFICITY_TARGET
from rewriting.verdict import assess, executed_setting

from .baselines import finetune_all

FINETUNE_STEPS = 100
#: The files `write_results` writes into its folder.
RESULT_FILES = ("results.json", "results.md", "rule_change.png")
METHODS = ("auto", "rank-1", "rank-3", "dense", "finetune-all", "paper", "paper-scaled")
#: Rank of each method's update for its random floor (None: every entry of the changed tensors).
FLOOR_RANK = {"rank-1": 1, "rank-3": 3, "dense": None, "finetune-all": None, "paper": 1,
              "paper-scaled": 1}
#: The strengths and regularisations the curves visit (regularisation: closed forms only).
STRENGTHS = (0.5, 1.0, 1.5, 2.0, 3.0)
REGULARIZATIONS = {
    "rank-1": (0.01, DEFAULT_REGULARIZATION, 1.0),
    "rank-3": (0.01, DEFAULT_REGULARIZATION, 1.0),
    "dense": (1e-4, DENSE_REGULARIZATION, 1e-2),
}
DEFAULT_REGULARIZATIONS = {"rank-1": DEFAULT_REGULARIZATION, "rank-3": DEFAULT_REGULARIZATION,
                           "dense": DENSE_REGULARIZATION}
#: The measures averaged per method (the floor's beside them).
MEASURES = ("efficacy", "generalization", "specificity", "efficacy_layer",
            "generalization_layer", "residual", "change_inside", "change_outside",
            "selectivity", "change_not_firing", "delta_norm_ratio", "seconds")
FLOOR_MEASURES = ("efficacy", "generalization", "specificity")
#: The strength each method's row is measured at: ours at the default, the baselines as solved.
ROW_STRENGTH = {"rank-1": DEFAULT_STRENGTH, "rank-3": DEFAULT_STRENGTH}


def _relative_norm(after: dict[str, torch.Tensor], before: dict[str, torch.Tensor]) -> float:
    change = sum(float((after[k] - before[k]).double().norm() ** 2) for k in after)
    base = sum(float(before[k].double().norm() ** 2) for k in after)
    return math.sqrt(change / base)


def goal_residual(generator: Generator, problem: EditProblem, weights: dict) -> float:
    """||V* - f(K*; W)|| / ||V* - f(K*; W0)|| on the goal box, through the whole network."""
    z = sample_latents(generator, [problem.request.paste.sample], problem.request.latents)
    region = problem.goal.region()

    def error(overrides: dict) -> float:
        values = read_layer(generator, problem.spec, z, problem.truncation, overrides).values[0]
        return float((problem.goal.target - values)[:, region].norm())

    return error(weights) / max(error(problem.base_weights), 1e-12)


def edited_weights(
    generator: Generator,
    request: EditRequest,
    method: str,
    problem: EditProblem,
    finetune_steps: int = FINETUNE_STEPS,
    regularization: float | None = None,
) -> tuple[dict[str, torch.Tensor], float]:
    """The weights one method produces for the request (at strength 1: the update as solved),
    and its seconds."""
    if method in ("rank-1", "rank-3", "dense"):
        variant = replace(
            request,
            rank=3 if method == "rank-3" else 1,
            method="dense" if method == "dense" else "rank",
            regularization=regularization if regularization is not None
            else request.regularization,
            strength=1.0,
        )
        result = execute(generator, variant, stats=problem.stats, max_delta_ratio=math.inf)
        return EditStack(generator, [result.delta]).weights(), result.solution.seconds
    if method in ("paper", "paper-scaled"):
        # The authors' procedure on their own goal and mask-to-grid rule, at their learning
        # rate or one scaled to the weight.
        paper = prepare_problem(
            generator, replace(request, rank=1, method=method, grid="paper"), stats=problem.stats
        )
        run = paper_procedure(paper)
        delta = expand(run.lam, paper.rule_directions.float(), paper.spec.key_axis)
        return {paper.spec.weight: paper.weight + delta}, run.seconds
    if method == "finetune-all":
        return finetune_all(generator, problem, steps=finetune_steps)
    raise ValueError(f"unknown method {method!r}")


def auto_weights(generator: Generator, request: EditRequest) -> tuple[dict, float, int]:
    """The tool's default for a request: what it leaves out chosen per request (`choose`), then
    solved at the chosen strength; the weights, the seconds (search included) and the rank."""
    started = time.perf_counter()
    chosen = search(generator, request).chosen.setting.apply(request) if request.auto else request
    stats = key_stats(generator, generator.layer(chosen.layer),
                      generator.check_truncation(chosen.truncation))
    result = execute(generator, chosen, stats=stats, max_delta_ratio=math.inf)
    return (EditStack(generator, [result.delta]).weights(), time.perf_counter() - started,
            result.delta.rank)


def verdict_row(generator: Generator, name: str, request: EditRequest, held_out: int) -> dict:
    """One request as `edit` runs it by default: the search for what it leaves out, the solve,
    the measures on the held-out samples beside their floor, and the verdict."""
    started = time.perf_counter()
    found = search(generator, request) if request.auto else None
    chosen = found.chosen.setting.apply(request) if found else request
    stats = key_stats(generator, generator.layer(chosen.layer),
                      generator.check_truncation(chosen.truncation))
    result = execute(generator, chosen, stats=stats)
    weights = EditStack(generator, [result.delta]).weights()
    numbers = held_out_samples(held_out, request.samples())
    probe = RuleProbe(generator, result.problem, numbers)
    measures = probe.measure(weights)
    floor = probe.floor(weights, result.delta.rank)
    verdict, found = assess(generator, result.problem, result.delta, measures, floor, numbers,
                            found=found)
    return {"request": name, "setting": executed_setting(result.problem, result.delta).label(),
            "copy": request.copy is not None, **verdict.record(),
            **{k: measures[k] for k in ("efficacy", "generalization", "specificity",
                                         "artefacts", "samples_firing")},
            "random_floor": floor, "search_seconds": found.seconds if found else 0.0,
            "seconds": time.perf_counter() - started}


def verdict_table(rows: list[dict]) -> str:
    """The verdict rows as a Markdown table, with how many took (copy/paste and all)."""
    copies = [r for r in rows if r["copy"]]
    lines = [
        f"{sum(r['took'] for r in copies)} of {len(copies)} copy/paste requests took, "
        f"{sum(r['took'] for r in rows)} of {len(rows)} in all.\n",
        "| request | setting | took | efficacy (random) | generalization (random) "
        "| specificity (random) | artefacts (random) | advice |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f = r["random_floor"]
        advice = r["advice"]["label"] if r["advice"] else ""
        lines.append(
            f"| {r['request']} | {r['setting']} | {'yes' if r['took'] else 'no'} | "
            f"{r['efficacy']:.3f} ({f['efficacy']:.3f}) | "
            f"{r['generalization']:.3f} ({f['generalization']:.3f}) | "
            f"{r['specificity']:.3f} ({f['specificity']:.3f}) | "
            f"{r['artefacts']:.2f} ({f['artefacts']:.2f}) | {advice} |")
    return "\n".join(lines) + "\n"


def evaluate(
    generator: Generator,
    requests: Sequence[tuple[str, EditRequest]],
    held_out: int = 256,
    methods: Sequence[str] = METHODS,
    finetune_steps: int = FINETUNE_STEPS,
    curves: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[list[dict], list[dict]]:
    """One row per (request, method) with every measure and its random floor, and the curve
    points (request, method, regularisation, strength, measures)."""
    rows, points = [], []
    for name, request in requests:
        spec = generator.layer(request.layer)
        truncation = generator.check_truncation(request.truncation)
        stats = key_stats(generator, spec, truncation)
        problem = prepare_problem(generator, replace(request, rank=1, method="rank"), stats=stats)
        probe = RuleProbe(generator, problem, held_out_samples(held_out, request.samples()))
        for method in methods:
            started = time.perf_counter()
            if method == "auto":
                solved, seconds, floor_rank = auto_weights(generator, request)
            else:
                solved, seconds = edited_weights(generator, request, method, problem,
                                                 finetune_steps)
                floor_rank = FLOOR_RANK[method]
            strength = ROW_STRENGTH.get(method, 1.0)
            weights = strengthen(probe.before, solved, probe.base, strength)
            row = {
                "request": name,
                "method": method,
                "strength": strength,
                "residual": goal_residual(generator, problem, weights),
                "delta_norm_ratio": _relative_norm(weights, probe.base),
                "seconds": seconds,
                **probe.measure(weights),
                "random_floor": probe.floor(weights, floor_rank),
            }
            rows.append(row)
            if curves and method != "auto":
                points += _curve(generator, request, method, problem, probe, solved, name,
                                 finetune_steps)
            floor = row["random_floor"]
            log(
                f"{name:24} {method:13} efficacy {row['efficacy']:6.3f} ({floor['efficacy']:6.3f})"
                f"  generalization {row['generalization']:6.3f} ({floor['generalization']:6.3f})"
                f"  specificity {row['specificity']:.3f} ({floor['specificity']:.3f})  "
                f"selectivity {row['selectivity']:4.1f}  ({time.perf_counter() - started:.1f} s)"
            )
    return rows, points


def _curve(
    generator: Generator,
    request: EditRequest,
    method: str,
    problem: EditProblem,
    probe: RuleProbe,
    solved: dict[str, torch.Tensor],
    name: str,
    finetune_steps: int,
) -> list[dict]:
    """The method's measures over strengths (and regularisations, for the closed forms)."""
    points = []
    for regularization in REGULARIZATIONS.get(method, (None,)):
        weights = solved
        if regularization is not None:
            weights, _ = edited_weights(generator, request, method, problem, finetune_steps,
                                        regularization)
        for strength in STRENGTHS:
            measured = probe.measure(strengthen(probe.before, weights, probe.base, strength))
            points.append({
                "request": name, "method": method, "regularization": regularization,
                "strength": strength,
                **{k: measured[k] for k in ("efficacy", "generalization", "specificity",
                                            "selectivity")},
            })
    return points


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per method, the mean of each measure over the requests, and of its random floor."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    out = {}
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        out[m] = {k: _mean([r[k] for r in mine]) for k in MEASURES}
        for k in FLOOR_MEASURES:
            out[m][f"floor_{k}"] = _mean([r["random_floor"][k] for r in mine])
    return out


def curve_means(points: list[dict]) -> dict[str, list[dict]]:
    """Per method, each (regularisation, strength) setting's measures averaged over requests."""
    out: dict[str, list[dict]] = {}
    for method in dict.fromkeys(p["method"] for p in points):
        settings = dict.fromkeys(
            (p["regularization"], p["strength"]) for p in points if p["method"] == method
        )
        out[method] = []
        for reg, strength in settings:
            mine = [p for p in points if p["method"] == method
                    and p["regularization"] == reg and p["strength"] == strength]
            out[method].append({
                "regularization": reg, "strength": strength,
                **{k: _mean([p[k] for p in mine])
                   for k in ("efficacy", "generalization", "specificity", "selectivity")},
            })
    return out


def recommended(means: dict[str, list[dict]]) -> dict[str, dict]:
    """Per method, the peak of its mean generalisation along the strength curve at its default
    regularisation (past the peak the update overshoots the goal); how the defaults are chosen."""
    out = {}
    for method, settings in means.items():
        default = DEFAULT_REGULARIZATIONS.get(method)
        mine = [s for s in settings if s["regularization"] == default] or settings
        out[method] = max(mine, key=lambda s: s["generalization"])
    return out


def at_specificity(settings: list[dict], specificity: float, regularization) -> float | None:
    """Generalisation along a method's strength curve (at one regularisation), interpolated
    linearly at the given specificity; None when the curve does not reach it."""
    curve = sorted(
        ((s["specificity"], s["generalization"]) for s in settings
         if s["regularization"] == regularization), reverse=True,
    )
    for (s0, g0), (s1, g1) in zip(curve, curve[1:], strict=False):
        if s1 <= specificity <= s0:
            return g0 if s0 == s1 else g0 + (g1 - g0) * (s0 - specificity) / (s0 - s1)
    return None


def markdown_table(rows: list[dict]) -> str:
    """The per-method means as one Markdown table, each rule-change measure beside its floor."""
    means = summary(rows)
    lines = [
        "| method | efficacy (random) | generalization (random) | specificity (random) "
        "| generalization at the layer | selectivity | ‖dW‖ / ‖W0‖ | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, m in means.items():
        lines.append(
            f"| {method} | {m['efficacy']:.3f} ({m['floor_efficacy']:.3f}) | "
            f"{m['generalization']:.3f} ({m['floor_generalization']:.3f}) | "
            f"{m['specificity']:.3f} ({m['floor_specificity']:.3f}) | "
            f"{m['generalization_layer']:.3f} | {m['selectivity']:.2f} | "
            f"{m['delta_norm_ratio']:.3f} | {m['seconds']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def rule_change_plot(rows: list[dict], means: dict[str, list[dict]], path: Path) -> None:
    """Left: generalisation against specificity as strength varies, per method (its default
    regularisation solid, others dotted), random floors as crosses. Right: the three measures
    per method beside their floors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curves, bars) = plt.subplots(1, 2, figsize=(13, 4.8))
    colours = plt.get_cmap("tab10")
    summaries = summary(rows)
    methods = list(summaries)
    for i, method in enumerate(methods):
        settings = means.get(method, [])
        regs = list(dict.fromkeys(s["regularization"] for s in settings))
        default = regs[len(regs) // 2] if regs else None
        for reg in regs:
            line = [s for s in settings if s["regularization"] == reg]
            curves.plot([s["specificity"] for s in line], [s["generalization"] for s in line],
                        color=colours(i), lw=2 if reg == default else 0.8,
                        ls="-" if reg == default else ":", marker="o", ms=3,
                        label=method if reg == default else None)
            if reg == default:
                for s in line:
                    curves.annotate(f"{s['strength']:g}", (s["specificity"], s["generalization"]),
                                    fontsize=6, color=colours(i), xytext=(2, 2),
                                    textcoords="offset points")
        m = summaries[method]
        curves.scatter([m["floor_specificity"]], [m["floor_generalization"]], marker="x",
                       color=colours(i), s=40)
    curves.axvline(SPECIFICITY_TARGET, color="grey", lw=0.8, ls="--")
    shown = [s for settings in means.values() for s in settings if s["specificity"] >= 0.5]
    if shown:
        # The region where edits are usable; methods that change everything fall off the left.
        curves.set_xlim(0.5, 1.0)
        curves.set_ylim(min(-0.05, *(s["generalization"] for s in shown)) - 0.02,
                        max(s["generalization"] for s in shown) + 0.05)
    curves.set_xlabel("specificity (1 = nothing changes where the rule does not fire)")
    curves.set_ylabel("generalisation (share of the gap to the goal closed, pixels)")
    curves.set_title("Mean over requests (specificity >= 0.5); labels: strength;\n"
                     "x: random update's floor; dotted: other regularisations", fontsize=10)
    curves.legend(fontsize=8)
    width = 0.13
    keys = ("efficacy", "generalization", "specificity")
    for j, key in enumerate(keys):
        xs = [k + j * 2 * width for k in range(len(methods))]
        bars.bar(xs, [summaries[m][key] for m in methods], width, color=colours(j), label=key)
        bars.bar([x + width for x in xs], [summaries[m][f"floor_{key}"] for m in methods],
                 width, color=colours(j), alpha=0.35, hatch="//", label=f"{key}, random")
    bars.set_xticks([k + 2.5 * width for k in range(len(methods))], methods, rotation=20)
    bars.axhline(0, color="black", lw=0.6)
    bars.set_title("At each method's default strength: each measure beside its random floor "
                   "(hatched)", fontsize=10)
    bars.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


@dataclass
class SetResults:
    """One request set's results: its name, the method rows and curve points, the verdicts."""

    name: str
    rows: list[dict]
    points: list[dict]
    verdicts: list[dict]

    def tables(self) -> str:
        """The set's verdicts with the defaults, then its methods, as Markdown."""
        return (f"## {self.name} set ({len(self.verdicts)} requests)\n\n### With the defaults"
                f"\n\n{verdict_table(self.verdicts)}\n### Methods\n\n"
                f"{markdown_table(self.rows)}")


def write_results(sets: list[SetResults], out: Path, context: dict) -> None:
    """results.json, results.md (each set's tables) and rule_change.png in `out` (all at once).
    The first set (the tuning set, by default) gives the curves, picks and the plot; every set
    has its verdicts, method summary and rows under `sets`."""
    first = sets[0]
    means = curve_means(first.points)
    picks = recommended(means)
    comparison = {}
    for paper in ("paper", "paper-scaled"):
        if paper in means and "rank-1" in means:
            target = next(s for s in means[paper] if s["strength"] == 1.0)
            comparison[paper] = {
                "specificity": target["specificity"],
                "generalization": target["generalization"],
                "rank-1_generalization_at_that_specificity": at_specificity(
                    means["rank-1"], target["specificity"], DEFAULT_REGULARIZATION
                ),
            }
    results = {
        **context, "summary": summary(first.rows), "recommended": picks,
        "rank1_vs_paper_at_equal_specificity": comparison, "curves": means, "rows": first.rows,
        "curve_points": first.points,
        "sets": {s.name: {"verdicts": s.verdicts, "summary": summary(s.rows), "rows": s.rows}
                 for s in sets},
    }
    tables = "\n".join(s.tables() for s in sets)
    write_folder(out, dict(zip(RESULT_FILES, (
        as_json(results),
        lambda path: Path(path).write_text(tables),
        lambda path: rule_change_plot(first.rows, means, Path(path)),
    ), strict=True)))
