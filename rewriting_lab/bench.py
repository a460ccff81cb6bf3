"""Speed and memory, measured: each figure is the median of several runs, with min and max."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from rewriting.choose import search
from rewriting.directions import directions_cosine
from rewriting.early import EARLY_SHRINKAGE, RefiningStats
from rewriting.errors import RewritingError
from rewriting.features import read_layer
from rewriting.generator import Generator
from rewriting.metrics import held_out_samples
from rewriting.render import fixed_batches
from rewriting.request import AUTO_SETTINGS, EditRequest
from rewriting.rewrite import execute, prepare_problem
from rewriting.solve import solve
from rewriting.stats import STATS_SEED, compute_key_stats

from .evaluate import edited_weights, goal_residual
from .project_eval import on_samples


def timed(run: Callable[[], object], repeats: int) -> dict[str, float]:
    """Median, min and max seconds of `repeats` calls (after one warm-up call)."""
    run()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds),
            "runs": repeats}


def throughput(generator: Generator, batch: int, repeats: int) -> dict[str, float]:
    """Images per second of the raw generator at a batch size."""
    z = generator.latents(range(batch))
    truncation = generator.check_truncation(None)
    t = timed(lambda: generator.synthesize(z, truncation), repeats)
    return {"images_per_second": batch / t["median"],
            "min": batch / t["max"], "max": batch / t["min"], "runs": repeats}


def versus_reference(
    ours: Callable[[torch.Tensor], torch.Tensor],
    reference: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    repeats: int,
) -> dict[str, float]:
    """Images per second of two generators of the same weights on latents `z`, timed in turn
    (one warm-up call each), and the largest difference of their images."""
    difference = float((ours(z) - reference(z)).abs().max())
    seconds: dict[str, list[float]] = {"ours": [], "reference": []}
    for _ in range(repeats):
        for name, run in (("ours", ours), ("reference", reference)):
            started = time.perf_counter()
            run(z)
            seconds[name].append(time.perf_counter() - started)
    rate = {name: len(z) / statistics.median(times) for name, times in seconds.items()}
    return {"images_per_second": rate["ours"], "reference_images_per_second": rate["reference"],
            "speedup": rate["ours"] / rate["reference"], "max_abs_difference": difference,
            "batch": len(z), "runs": repeats}


def statistics_cost(
    generator: Generator, layer: str | None, samples: int, repeats: int
) -> dict[str, float]:
    """Seconds for C over `samples` samples, and for running the generator to the layer alone."""
    spec = generator.layer(layer)
    truncation = generator.check_truncation(None)

    def floor() -> None:
        for chunk, _ in fixed_batches(generator.latents(range(samples), STATS_SEED)):
            read_layer(generator, spec, chunk, truncation)

    stats = timed(lambda: compute_key_stats(generator, spec, truncation, samples), repeats)
    bare = timed(floor, repeats)
    return {"layer": spec.name, "samples": samples, "seconds": stats,
            "forward_to_layer_seconds": bare,
            "overhead": stats["median"] / bare["median"] - 1}


def search_cost(generator: Generator, requests: list[EditRequest]) -> dict:
    """Seconds of the per-request search with all four settings left to it (the app's
    default), one search per request, every layer's statistics cached and each search run once
    before to warm the kept readings (as on a warm server); the slowest beside the median."""
    for request in requests:
        search(generator, replace(request, auto=AUTO_SETTINGS))
    seconds = []
    for request in requests:
        started = time.perf_counter()
        search(generator, replace(request, auto=AUTO_SETTINGS))
        seconds.append(time.perf_counter() - started)
    return {"requests": len(requests), "median": statistics.median(seconds),
            "min": min(seconds), "max": max(seconds)}


def edit_cost(generator: Generator, request: EditRequest, repeats: int) -> dict[str, dict]:
    """One edit's solve, five ways: seconds, and the residual on the same goal.

    The keys, goal and directions are prepared once (as an app session does); ours then solves
    that problem in closed form (default guards), in closed form on the paper's bare objective
    (no ridge, goal box only) and iterating on Lambda. The authors' procedure (their goal, mask
    grid, L1 loss, Adam with projection, 2001 steps) runs at their learning rate and at one
    scaled to the weight; its residual is measured on our goal, like the others'.
    """
    problem = prepare_problem(generator, request)
    args = (problem.module, problem.spec, problem.weight, problem.directions, problem.keys,
            problem.inputs)
    moment = problem.stats.second_moment
    bare_goal = replace(problem.goal, keep=0.0)
    ways = {
        "closed_form": lambda: solve(*args, problem.goal, moment),
        "closed_form_paper_objective": lambda: solve(*args, bare_goal, moment, 0.0),
        "iterative": lambda: solve(*args, problem.goal, moment, iterative=True),
    }
    out: dict[str, dict] = {}
    for name, way in ways.items():
        solution = way()
        out[name] = {"seconds": timed(way, repeats), "residual": solution.residual,
                     "delta_norm_ratio": solution.delta_norm_ratio}
    for method in ("paper", "paper-scaled"):
        seconds, residuals = [], []
        for _ in range(max(1, repeats // 4)):
            weights, spent = edited_weights(generator, request, method, problem)
            residuals.append(goal_residual(generator, problem, weights))
            seconds.append(spent)
        out[method.replace("-", "_") + "_procedure"] = {
            "seconds": {"median": statistics.median(seconds), "min": min(seconds),
                        "max": max(seconds), "runs": len(seconds)},
            "residual": statistics.median(residuals),
        }
    out["speedup_closed_form_vs_paper"] = (
        out["paper_procedure"]["seconds"]["median"] / out["closed_form"]["seconds"]["median"]
    )
    return out


def first_edit(generator: Generator, request: EditRequest, early: int, samples: int) -> dict:
    """Seconds from nothing cached to the first delta solved on `early` samples' statistics
    (refined to `samples` alongside), and the cosine of its D to the D of the full ones."""
    spec = generator.layer(request.layer)
    truncation = generator.check_truncation(request.truncation)
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        refining = RefiningStats(generator, spec, truncation, samples, early,
                                 cache_dir=Path(cache))
        early_s = time.perf_counter() - started
        first = execute(generator, request, stats=refining.current())
        first_s = time.perf_counter() - started
        full = refining.wait()
        refined_s = time.perf_counter() - started
    later = execute(generator, request, stats=full)
    return {"first_edit_s": first_s, "early_statistics_s": early_s, "refined_s": refined_s,
            "early_samples": early, "samples": samples, "shrinkage": EARLY_SHRINKAGE,
            "early_directions_cosine": directions_cosine(first.delta.directions,
                                                         later.delta.directions)}


def projection_cost(generator: Generator, samples: int, steps: int) -> dict[str, float]:
    """Seconds per image and PSNR of projecting held-out samples back into the model."""
    result = on_samples(generator, held_out_samples(samples), steps)
    return {**result["summary"], "steps": steps}


def memory(generator: Generator, request: EditRequest) -> dict[str, float]:
    """Peak resident memory of this process, and what one session's edit adds (its delta)."""
    result = execute(generator, request)
    delta_bytes = sum(t.numel() * t.element_size()
                      for t in (result.delta.lam, result.delta.directions))
    model_bytes = sum(p.numel() * p.element_size() for p in generator.net.parameters())
    return {
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "edit_delta_bytes": delta_bytes,
        "model_parameter_bytes": model_bytes,
    }


def cli_edit_cost(request: Path, runs: int) -> dict:
    """Wall seconds of `python -m rewriting edit REQUEST` in a fresh process (after one untimed
    run that caches the statistics), and the phases the last run wrote in metrics.json."""
    last: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-edit-") as folder:

        def run() -> None:
            out = Path(folder) / f"edit-{len(list(Path(folder).iterdir()))}"
            done = subprocess.run(
                [sys.executable, "-m", "rewriting", "edit", str(request), "--out", str(out)],
                cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
            )
            if done.returncode != 0:
                raise RewritingError(f"`edit {request}` failed: "
                                     f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
            last.update(json.loads((out / "metrics.json").read_text()))

        seconds = timed(run, runs)
    return {"request": request.name, "edit_s": seconds["median"], "seconds": seconds,
            "phases": last["seconds_phases"], "seconds_total_inside": last["seconds_total"]}


def table(report: dict) -> str:
    """The report as one Markdown table: figure, median, and the range over runs."""
    lines = ["| model | figure | median | range |", "|---|---|---|---|"]

    def row(model: str, figure: str, median: float, low: float, high: float, unit: str) -> None:
        lines.append(f"| {model} | {figure} | {median:.4g} {unit} | {low:.4g} to {high:.4g} |")

    for model, figures in report.items():
        if not isinstance(figures, dict) or "statistics" not in figures:
            continue
        if "search" in figures:
            s = figures["search"]
            row(model, f"per-request search, all four settings, {s['requests']} requests",
                s["median"], s["min"], s["max"], "s")
        for key, value in figures.items():
            if key.startswith("throughput"):
                row(model, key.replace("_", " "), value["images_per_second"], value["min"],
                    value["max"], "images/s")
        stats = figures["statistics"]
        s = stats["seconds"]
        row(model, f"key statistics, {stats['layer']}, {stats['samples']} samples",
            s["median"], s["min"], s["max"], "s")
        f = stats["forward_to_layer_seconds"]
        row(model, f"generator up to {stats['layer']} alone (floor)", f["median"], f["min"],
            f["max"], "s")
        lines.append(f"| {model} | statistics overhead over the floor | "
                     f"{100 * stats['overhead']:.0f} % | |")
        for method, data in figures.get("edit", {}).items():
            if not isinstance(data, dict):
                continue
            t = data["seconds"]
            row(model, f"one edit: {method.replace('_', ' ')} (residual "
                f"{data['residual']:.3f})", t["median"], t["min"], t["max"], "s")
        if figures.get("reference_throughput_batch_1") is not None:
            lines.append(f"| {model} | rosinality's reference, same weights, images/s at batch 1 "
                         f"| {figures['reference_throughput_batch_1']:.4g} | ours "
                         f"{figures['speedup_vs_reference']:.2f}x |")
        if "first_edit_s" in figures:
            lines.append(f"| {model} | first edit, nothing cached ({figures['early_samples']} "
                         f"early samples, shrinkage {figures['shrinkage']:g}) | "
                         f"{figures['first_edit_s']:.3g} s | solving from "
                         f"{figures['early_statistics_s']:.3g} s, refined at "
                         f"{figures['refined_s']:.3g} s |")
            lines.append(f"| {model} | cosine of early D to full D | "
                         f"{figures['early_directions_cosine']:.4f} | |")
        if "edit" in figures:
            lines.append(f"| {model} | paper procedure / closed form | "
                         f"{figures['edit']['speedup_closed_form_vs_paper']:.0f}x | |")
        if "projection" in figures:
            p = figures["projection"]
            lines.append(f"| {model} | projection of a held-out sample, {p['steps']} steps "
                         f"(mean of {p['images']}) | {p['seconds_per_image_mean']:.3g} s "
                         f"({p['cpu_seconds_per_image_mean']:.3g} s CPU) | "
                         f"up to {p['seconds_per_image_max']:.3g} s |")
            lines.append(f"| {model} | its PSNR (the model's mean image) | "
                         f"{p['psnr_mean']:.1f} dB ({p['psnr_mean_image_mean']:.1f} dB) | "
                         f"{p['psnr_min']:.1f} to {p['psnr_max']:.1f} dB |")
        if "memory" in figures:
            m = figures["memory"]
            lines.append(f"| {model} | peak memory of the process | "
                         f"{m['peak_rss_mib']:.0f} MiB | |")
            lines.append(f"| {model} | memory one session's edit adds (its delta) | "
                         f"{m['edit_delta_bytes'] / 1024:.1f} KiB (model: "
                         f"{m['model_parameter_bytes'] / 2**20:.1f} MiB) | |")
    if "cli" in report:
        c = report["cli"]
        t = c["seconds"]
        row("command line", f"`edit {c['request']}`, statistics cached (wall)", t["median"],
            t["min"], t["max"], "s")
        for phase, seconds in c["phases"].items():
            lines.append(f"| command line | its phase {phase} | {seconds:.3g} s | |")
    if "app" in report:
        lines += app_rows(report["app"])
    return "\n".join(lines)


def app_rows(app: dict) -> list[str]:
    """Table rows of the app's latencies: p50, and p95 as the range column."""
    names = {"page_open": "page open to a usable canvas",
             "execute": "Execute to result (its before/after picture)",
             "measures": "Execute to its measures", "sample_open": "opening a sample",
             "revert": "Revert"}
    rows = []
    for suffix, who in (("_1", "1 visitor"), ("", f"{app['visitors']} visitors at once")):
        for action, name in names.items():
            rows.append(f"| app | {name}, {who} | {app[f'{action}_p50_s{suffix}']:.3g} s | "
                        f"p95 {app[f'{action}_p95_s{suffix}']:.3g} s |")
    return rows + first_execute_rows(app.get("first_execute"))


def first_execute_rows(first: dict | None) -> list[str]:
    """Table rows of each example's first Execute on a fresh server, and of the warm-up."""
    if first is None:
        return []
    rows = [
        f"| app | first Execute of {button} on a fresh server process (warm-up done, "
        f"statistics cached; {first['starts']} starts) | {figures['execute_s']:.3g} s | "
        f"{min(figures['execute_runs_s']):.3g} to {max(figures['execute_runs_s']):.3g} s |"
        for button, figures in first["buttons"].items()
    ]
    return rows + [
        f"| app | fresh server: serving, then warm-up done (statistics cached) | "
        f"{first['served_s']:.3g} s, {first['warm_up_s']:.3g} s | |",
        f"| app | first start ever: warm-up done (statistics computed), then its first "
        f"Execute | {first['first_start']['warm_up_s']:.3g} s, "
        f"{first['first_start']['execute_s']:.3g} s | |",
    ]
