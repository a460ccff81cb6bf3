"""`bench` (speed and memory) and `evaluate` (ours against the paper's baselines): the lab's."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from rewriting import __version__
from rewriting.atomic import as_json, check_output, write_atomically
from rewriting.errors import RewritingError
from rewriting.limits import MAX_SAMPLES_PER_CALL
from rewriting.request import read_request
from rewriting_lab import bench, bench_suite, evaluate
from rewriting_lab.machine import machine
from rewriting_lab.reference_stylegan2 import check_checkout
from zoo.hub import load_any

from .common import DEFAULT_MODEL, int_range

#: The request set `evaluate` runs by default, kept in the repository.
EVALUATION_SET = Path(__file__).parent.parent / "examples" / "evaluation"


def add_bench(sub: argparse._SubParsersAction) -> None:
    """`bench [--json FILE]`: the speed and memory table."""
    p = sub.add_parser("bench", help="measure speed and memory; print a table, write JSON")
    p.add_argument("--json", help="write the figures to this JSON file")
    p.add_argument("--request", default=str(EVALUATION_SET.parent / "eye-to-mouth.json"))
    p.add_argument("--repeats", type=int_range(1, 1000), default=5)
    p.add_argument("--quick", action="store_true",
                   help="fewer statistics samples (200, and 20 on StyleGAN2) instead of 1000")
    p.add_argument("--no-stylegan2", action="store_true", help="skip the 256 px StyleGAN2")
    p.add_argument("--no-app", action="store_true",
                   help="skip the running app's latencies (page open, Execute, sample, Revert)")
    p.add_argument("--app-visitors", type=int_range(2, 16), default=4,
                   help="visitors acting at once in the app's second run (the first has one)")
    p.add_argument("--app-rounds", type=int_range(1, 100), default=3,
                   help="rounds of open, Execute, open a sample, Revert per visitor")
    p.add_argument("--reference", metavar="PATH",
                   help="a checkout of rosinality/stylegan2-pytorch to measure our StyleGAN2 "
                   "against (same weights, its CPU fallbacks); without it those figures are null")
    p.set_defaults(run=cmd_bench)


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """`evaluate [--requests DIR] [--out DIR]`: the quality table, its JSON and its plot."""
    p = sub.add_parser("evaluate", help="compare ours with the paper's baselines on a request set")
    p.add_argument("--requests", action="append", metavar="DIR",
                   help="a folder of requests (*.json), its own table; may repeat (default: "
                   "the tuning set examples/evaluation, then the test set in its test/)")
    p.add_argument("--methods", default=",".join(evaluate.METHODS),
                   help=f"comma-separated, of {', '.join(evaluate.METHODS)} (default: all)")
    p.add_argument("--out", default="evaluation")
    p.add_argument("--held-out", type=int_range(1, MAX_SAMPLES_PER_CALL), default=256)
    p.add_argument("--finetune-steps", type=int_range(1, 100_000), default=100)
    p.add_argument("--no-curves", action="store_true",
                   help="skip the strength and regularisation curves (faster)")
    p.set_defaults(run=cmd_evaluate)


def cmd_bench(args: argparse.Namespace) -> None:
    """Measure every part the flags leave in; print the table, write the figures."""
    out = None if args.json is None else check_output(args.json)
    if args.reference is not None:
        check_checkout(args.reference)
    generator = load_any(DEFAULT_MODEL)
    request = read_request(args.request)
    report: dict = {"machine": machine(), "quick": args.quick, "tool_version": __version__}
    print(f"benchmark on {report['machine']['machine']} (torch {torch.__version__})")
    searched = [r for _, r in request_sets(None)[0][1]]  # the tuning set
    report[DEFAULT_MODEL] = bench_suite.default_model(generator, request, args.repeats,
                                                      args.quick, searched)
    if not args.no_stylegan2:
        report["stylegan2-random-256"] = bench_suite.stylegan2(args.repeats, args.quick,
                                                               args.reference)
    report["cli"] = bench.cli_edit_cost(Path(args.request), 1 if args.quick else 3)
    if not args.no_app:
        report["app"] = bench_suite.app_latency(args.app_visitors, args.app_rounds)
    print(bench.table(report))
    if out:
        write_atomically(out, as_json(report))
        print(f"wrote {args.json}")


def request_sets(folders: list[str] | None) -> list[tuple[str, list]]:
    """(name, [(stem, request)]) per folder, in order; the tuning and test sets by default."""
    named = ([(Path(f).name, Path(f)) for f in folders] if folders else
             [("tuning", EVALUATION_SET), ("test", EVALUATION_SET / "test")])
    sets = []
    for name, folder in named:
        if not folder.is_dir():
            raise RewritingError(f"--requests {folder} is not a folder of request files")
        paths = sorted(folder.glob("*.json"))
        if not paths:
            raise RewritingError(f"no request files (*.json) in {folder}")
        sets.append((name, [(p.stem, read_request(p)) for p in paths]))
    return sets


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Every method on every request of each set; print the tables, write the results."""
    out = check_output(args.out, folder=True, names=evaluate.RESULT_FILES)
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(evaluate.METHODS))
    if unknown or not methods:
        raise RewritingError(f"--methods: unknown {', '.join(unknown) or 'empty list'}; choose "
                             f"from {', '.join(evaluate.METHODS)}")
    sets = request_sets(args.requests)
    generator = load_any(sets[0][1][0][1].model)
    results = []
    for name, requests in sets:
        verdicts = [evaluate.verdict_row(generator, stem, request, args.held_out)
                    for stem, request in requests]
        rows, points = evaluate.evaluate(
            generator, requests, held_out=args.held_out, methods=methods,
            finetune_steps=args.finetune_steps, curves=not args.no_curves,
        )
        results.append(evaluate.SetResults(name, rows, points, verdicts))
        print(results[-1].tables())
    context = {
        "model": generator.name, "held_out_samples": args.held_out,
        "finetune_steps": args.finetune_steps, "tool_version": __version__, **machine(),
    }
    evaluate.write_results(results, out, context)
    print(f"wrote {args.out}/results.json, results.md, rule_change.png")
