"""Quality of an edit against the paper's baselines, on a fixed set of requests.

Every method solves the same request (the same goal, the same context); all are measured on
the same held-out samples and the same firing locations (those of the rank-one context key):
the relative residual on the goal, the mean absolute pixel change inside and outside where the
context key fires, their ratio (selectivity), the change on samples where it fires nowhere,
||dW|| / ||W0|| and seconds.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from .baselines import finetune_all, paper_procedure, scaled_lr
from .delta import EditStack
from .features import read_layer
from .generator import Generator
from .metrics import change_summary, firing_masks, held_out_samples
from .render import render
from .request import EditRequest
from .rewrite import EditProblem, execute, prepare
from .solve import expand
from .stats import key_stats

FINETUNE_STEPS = 100
METHODS = ("rank-1", "rank-3", "dense", "finetune-all", "paper", "paper-scaled")


def _relative_norm(after: dict[str, torch.Tensor], before: dict[str, torch.Tensor]) -> float:
    change = sum(float((after[k] - before[k]).double().norm() ** 2) for k in after)
    base = sum(float(before[k].double().norm() ** 2) for k in after)
    return math.sqrt(change / base)


def goal_residual(generator: Generator, problem: EditProblem, weights: dict) -> float:
    """||V* - f(K*; W)|| / ||V* - f(K*; W0)|| on the goal box, through the whole network."""
    z = generator.latents([problem.request.paste.sample])
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
) -> tuple[dict[str, torch.Tensor], float]:
    """The weights one method produces for the request, and its seconds."""
    if method in ("rank-1", "rank-3", "dense"):
        variant = replace(
            request,
            rank=3 if method == "rank-3" else 1,
            method="dense" if method == "dense" else "rank",
        )
        result = execute(generator, variant, stats=problem.stats, max_delta_ratio=math.inf)
        return EditStack(generator, [result.delta]).weights(), result.solution.seconds
    if method in ("paper", "paper-scaled"):
        # The authors' procedure on their own goal and mask-to-grid rule, at their learning
        # rate or one scaled to the weight.
        paper = prepare(
            generator, replace(request, rank=1, method=method, grid="paper"), stats=problem.stats
        )
        lr = None if method == "paper" else scaled_lr(paper.weight)
        lam, seconds = paper_procedure(paper, lr=lr)
        delta = expand(lam, paper.rule_directions.float(), paper.spec.key_axis)
        return {paper.spec.weight: paper.weight + delta}, seconds
    if method == "finetune-all":
        return finetune_all(generator, problem, steps=finetune_steps)
    raise ValueError(f"unknown method {method!r}")


def evaluate(
    generator: Generator,
    requests: Sequence[tuple[str, EditRequest]],
    held_out: int = 256,
    methods: Sequence[str] = METHODS,
    finetune_steps: int = FINETUNE_STEPS,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """One row per (request, method) with every measure."""
    numbers = held_out_samples(held_out)
    rows = []
    for name, request in requests:
        spec = generator.layer(request.layer)
        truncation = generator.check_truncation(request.truncation)
        stats = key_stats(generator, spec, truncation)
        problem = prepare(generator, replace(request, rank=1, method="rank"), stats=stats)
        original = render(generator, numbers, truncation)
        fires = firing_masks(
            generator, spec, problem.context_key, problem.threshold, numbers, truncation
        )
        base = {k: v.detach() for k, v in generator.net.named_parameters()}
        for method in methods:
            started = time.perf_counter()
            weights, seconds = edited_weights(generator, request, method, problem, finetune_steps)
            edited = render(generator, numbers, truncation, weights)
            row = {
                "request": name,
                "method": method,
                "residual": goal_residual(generator, problem, weights),
                "delta_norm_ratio": _relative_norm(weights, base),
                "seconds": seconds,
                **change_summary(original, edited, fires),
            }
            rows.append(row)
            log(
                f"{name:24} {method:16} residual {row['residual']:.3f}  inside "
                f"{row['change_inside']:5.1f}  outside {row['change_outside']:5.1f}  "
                f"selectivity {row['selectivity']:4.1f}  ({time.perf_counter() - started:.1f} s)"
            )
    return rows


def summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per method, the mean of each measure over the requests."""
    keys = ("residual", "change_inside", "change_outside", "selectivity", "change_not_firing",
            "delta_norm_ratio", "seconds")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    return {
        m: {k: sum(r[k] for r in rows if r["method"] == m)
            / sum(1 for r in rows if r["method"] == m) for k in keys}
        for m in methods
    }


def markdown_table(rows: list[dict]) -> str:
    """The per-method means as one Markdown table."""
    means = summary(rows)
    lines = [
        "| method | residual | change inside | change outside | selectivity "
        "| change where it never fires | ‖dW‖ / ‖W0‖ | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, m in means.items():
        lines.append(
            f"| {method} | {m['residual']:.3f} | {m['change_inside']:.1f} | "
            f"{m['change_outside']:.1f} | {m['selectivity']:.2f} | {m['change_not_firing']:.2f} "
            f"| {m['delta_norm_ratio']:.3f} | {m['seconds']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def selectivity_plot(rows: list[dict], path: Path) -> None:
    """Change inside versus outside the rule's context, one point per request and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (scatter, bars) = plt.subplots(1, 2, figsize=(11, 4.2))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    colours = plt.get_cmap("tab10")
    for i, method in enumerate(methods):
        mine = [r for r in rows if r["method"] == method]
        scatter.scatter([r["change_outside"] for r in mine], [r["change_inside"] for r in mine],
                        label=method, color=colours(i), s=36)
    values = [v for r in rows for v in (r["change_inside"], r["change_outside"]) if v > 0]
    low, high = min(values) / 1.3, max(values) * 1.3
    scatter.plot([low, high], [low, high], color="grey", lw=0.8, ls="--", label="no selectivity")
    scatter.set_xscale("log")
    scatter.set_yscale("log")
    scatter.set_xlabel("mean |pixel change| outside the context (0-255)")
    scatter.set_ylabel("mean |pixel change| inside the context (0-255)")
    scatter.set_title("Each edit: upper left is better")
    scatter.legend(fontsize=8)
    means = summary(rows)
    bars.bar(methods, [means[m]["selectivity"] for m in methods],
             color=[colours(i) for i in range(len(methods))])
    bars.set_ylabel("selectivity (inside / outside), mean over requests")
    bars.set_title("Higher: the change stays where the rule applies")
    bars.tick_params(axis="x", rotation=20)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_results(rows: list[dict], out: Path, context: dict) -> None:
    """results.json, results.md and selectivity.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({**context, "summary": summary(rows), "rows": rows}, indent=2) + "\n"
    )
    (out / "results.md").write_text(markdown_table(rows))
    selectivity_plot(rows, out / "selectivity.png")
