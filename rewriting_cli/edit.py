"""`edit` (a request executed, measured and written out) and `stats` (a layer's key statistics)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from rewriting import __version__
from rewriting.atomic import check_output
from rewriting.choose import search, search_table
from rewriting.delta import EditStack
from rewriting.early import RefiningStats
from rewriting.editdir import EDIT_FILES, before_after_picture, write_edit_dir
from rewriting.efficacy import RuleProbe
from rewriting.limits import MAX_APP_SAMPLES, MAX_SAMPLES_PER_CALL, MAX_SCALE, check_picture
from rewriting.metrics import held_out_samples
from rewriting.parallel import is_main
from rewriting.request import AUTO_SETTINGS, check_method_strength, check_strength, read_request
from rewriting.rewrite import DEFAULT_STRENGTH, check_request, execute
from rewriting.stats import key_stats, save_atomic
from rewriting.verdict import Verdict, assess
from zoo.hub import load_any

from .common import DEFAULT_MODEL, int_range, open_edits, progress


def add_stats(sub: argparse._SubParsersAction) -> None:
    """`stats [--layer L]`: compute the key statistics C, or find them cached."""
    p = sub.add_parser("stats", help="compute (or reuse) the key statistics C of a layer")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--layer")
    p.add_argument("--samples", type=int_range(1, MAX_SAMPLES_PER_CALL), default=1000)
    p.add_argument("--truncation", type=float)
    p.add_argument("--out", help="also write C and the key sample to this safetensors file")
    p.set_defaults(run=cmd_stats)


def add_edit(sub: argparse._SubParsersAction) -> None:
    """`edit REQUEST --out DIR`: the delta, the request, the metrics and a before/after picture."""
    p = sub.add_parser("edit", help="execute an edit request, write its delta and pictures")
    p.add_argument("request", help="edit request JSON (this tool's or the paper's format)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", help="model (required for the paper's format)")
    p.add_argument("--layer", help="layer (required for the paper's format, unless 'auto'); "
                   "'auto' lets the per-request search choose it")
    p.add_argument("--strength", type=float,
                   help="factor on the solved update, rank method only (default: the "
                   f"request's, else {DEFAULT_STRENGTH:g})")
    p.add_argument("--auto", action="store_true",
                   help="choose layer, rank, goal and strength for this request on validation "
                   "samples (as the request's \"auto\": true)")
    p.add_argument("--edit", action="append", default=[], metavar="DELTA",
                   help="earlier edits to apply first")
    p.add_argument("--stats-samples", type=int_range(1, MAX_SAMPLES_PER_CALL), default=1000)
    p.add_argument("--early-stats", type=int_range(1, MAX_SAMPLES_PER_CALL), metavar="N",
                   help="when the statistics are not cached, solve with N samples' statistics "
                   "shrunk towards their diagonal while the full ones are computed alongside")
    p.add_argument("--held-out", type=int_range(1, MAX_SAMPLES_PER_CALL), default=64)
    p.add_argument("--show", type=int_range(1, MAX_APP_SAMPLES), default=12,
                   help="held-out samples in the picture: those where the context fires most")
    p.add_argument("--scale", type=int_range(1, MAX_SCALE), default=2)
    p.set_defaults(run=cmd_edit)


def cmd_stats(args: argparse.Namespace) -> None:
    """C over this rank's share of the samples, summed over ranks; the main rank reports."""
    out = None if args.out is None else check_output(args.out)
    generator = load_any(args.model)
    spec = generator.layer(args.layer)
    truncation = generator.check_truncation(args.truncation)
    started = time.perf_counter()
    report = progress("statistics") if is_main() else None
    stats = key_stats(generator, spec, truncation, samples=args.samples, progress=report)
    if out and is_main():
        save_atomic(out, stats)
    if not is_main():
        return
    print(
        f"C for {generator.name} {spec.name}: {stats.second_moment.shape[0]} key channels, "
        f"{stats.count} keys from {args.samples} samples, {time.perf_counter() - started:.1f} s"
    )


@contextmanager
def timed(phases: dict[str, float], name: str) -> Iterator[None]:
    """Record the seconds the block takes as `phases[name]`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = time.perf_counter() - start


def cmd_edit(args: argparse.Namespace) -> None:
    """Execute the request on top of --edit's deltas, measure it on held-out samples and write
    the edit's folder; one line of figures."""
    started = time.perf_counter()
    phases: dict[str, float] = {}
    out = check_output(args.out, folder=True, names=EDIT_FILES)
    request = read_request(args.request, args.model, args.layer)
    if args.auto:
        request = replace(request, auto=AUTO_SETTINGS)
    if args.strength is not None:
        strength = check_strength(args.strength, "--strength")
        request = replace(request, strength=check_method_strength(request.method, strength),
                          auto=tuple(a for a in request.auto if a != "strength"))
    with timed(phases, "load"):
        generator = load_any(request.model)
        stack = open_edits(generator, args.edit)
    held_out = held_out_samples(args.held_out, request.samples())
    layer_stats = LayerStats(generator, generator.check_truncation(request.truncation), args)
    found = None
    if request.auto:
        check_request(generator, replace(request, layer=request.layer or generator.default_layer))
        with timed(phases, "search"):
            found = search(generator, request, stack, layer_stats,
                           log=lambda line: print(line, file=sys.stderr))
        print(search_table(found))
        request = found.chosen.setting.apply(request)
    spec = check_request(generator, request)
    check_picture(3, args.show, generator.image_size, args.scale)
    with timed(phases, "statistics"):
        stats = layer_stats(spec.name)
    with timed(phases, "execute"):
        result = execute(generator, request, stack, stats)
    edited = EditStack(generator, [*stack.deltas, result.delta])
    after = edited.weights()
    with timed(phases, "measure"):
        probe = RuleProbe(generator, result.problem, held_out)
        passes = probe.run(after)
        change = {**probe.measure(after, passes),
                  "random_floor": probe.floor(after, result.delta.rank)}
    with timed(phases, "verdict"):
        verdict, found = assess(generator, result.problem, result.delta, change,
                                change["random_floor"], held_out, stack, found, layer_stats)
    with timed(phases, "picture"):
        # Show the held-out samples where the rule applies most (chosen by the context key
        # alone, before the edit, not by how much they changed), from the measure's renders.
        shown = probe.strongest(args.show)
        rows = [probe.numbers.index(n) for n in shown]
        picture = before_after_picture(probe.original[rows], passes.held_out[rows], args.scale,
                                       [probe.goal_box(n) for n in shown])
    if args.early_stats:
        with timed(phases, "refine_statistics"):
            layer_stats.wait()  # so that the next edit finds the full statistics cached
    metrics = {
        **result.delta.metrics,
        **change,
        "layer": spec.name,
        "model": generator.name,
        "stacked_on": len(stack.deltas),
        **verdict.record(),
        **({"search": found.record()} if found else {}),
        "seconds_phases": phases,
        "seconds_total": time.perf_counter() - started,
        "tool_version": __version__,
    }
    result.delta.metrics = metrics
    write_edit_dir(out, result.delta, request.to_json(), picture, metrics)
    floor = change["random_floor"]
    print(
        f"edited {generator.name} {spec.name} at strength {result.delta.strength:g}: efficacy "
        f"{change['efficacy']:.2f} (random {floor['efficacy']:.2f}), generalization "
        f"{change['generalization']:.2f} (random {floor['generalization']:.2f}), specificity "
        f"{change['specificity']:.2f} (random {floor['specificity']:.2f}), selectivity "
        f"{change['selectivity']:.1f}, ||dW||/||W0|| {metrics['delta_norm_ratio']:.3f}, "
        f"solve {metrics['seconds_solve'] * 1000:.1f} ms; wrote {out}/"
    )
    print(verdict_lines(verdict))


class LayerStats:
    """Each layer's key statistics for the search and the solve: cached or computed with
    progress, or with --early-stats the early ones while the full ones are computed alongside."""

    def __init__(self, generator, truncation: float | None, args: argparse.Namespace) -> None:
        self.generator, self.truncation, self.args = generator, truncation, args
        self.refining: dict[str, RefiningStats] = {}
        self.pinned: dict = {}

    def __call__(self, layer: str):
        spec, args = self.generator.layers[layer], self.args
        if not args.early_stats:
            return key_stats(self.generator, spec, self.truncation, samples=args.stats_samples,
                             progress=progress(f"statistics {layer}"))
        if layer not in self.refining:  # one edit solves with the statistics it began with
            self.refining[layer] = RefiningStats(self.generator, spec, self.truncation,
                                                 args.stats_samples, args.early_stats)
            self.pinned[layer] = self.refining[layer].current()
        return self.pinned[layer]

    def wait(self) -> None:
        """Wait for the full statistics being computed alongside, so that they are cached."""
        for refining in self.refining.values():
            refining.wait()


def verdict_lines(verdict: Verdict) -> str:
    """The verdict, its reasons and the advice, as printed after the figures."""
    lines = [verdict.verdict]
    lines += [f"  likely reason: {reason}" for reason in verdict.reasons]
    if verdict.advice:
        lines.append(f"  advice: try {verdict.advice['label']} ({verdict.advice['checked']})")
    elif not verdict.took:
        lines.append("  advice: none of the settings the tool tried does better")
    return "\n".join(lines)
