"""The prepared GPU check (`scripts/gpu_check.sh`): at most five minutes on one CUDA GPU.

(a) `check-plugin` for every built-in family on the GPU (its test vector; the DCGAN's embedded
model). (b) The CPU against the GPU: samples 0-15 (largest and mean pixel difference, in grey
levels of 255, with TF32 off and on) and an edit's update (the cosine of the two dW). (c) On
the GPU, for the DCGAN and random StyleGAN2s of FFHQ config-f shape at 256 and 1024 px, in
float32 and half precision: images per second at batch 8, half precision's pixel error against
float32, key statistics over 1000 samples at a 64x64 layer, the first edit with nothing cached
(statistics, solve, measures on 32 held-out samples) and Execute (solve, probe, before/after
pictures) for 4 visitors at once (in float32 and float16). The figures go under the `device`
key of docs/bench.json. `--cpu` runs the same on the CPU at small sizes (the DCGAN; the
StyleGAN2 test vector beside it in (b)), so that the check cannot rot where there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from rewriting import readings
from rewriting.atomic import as_json, check_output, write_atomically
from rewriting.delta import EditStack
from rewriting.device import CPU, exact_matmul, render_precision, select_device
from rewriting.efficacy import RuleProbe
from rewriting.errors import RewritingError, one_line
from rewriting.generator import Generator
from rewriting.metrics import held_out_samples
from rewriting.render import render
from rewriting.request import EditRequest, parse_request, read_request
from rewriting.rewrite import execute
from rewriting.stats import key_stats
from zoo.conformance import check_plugin, cpu_copy
from zoo.loader import build_from_file, load_model

from .bench_suite import STYLEGAN2_REQUEST, random_stylegan2
from .machine import machine

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
#: Every built-in family and the checkpoint its contracts are checked on (None: the catalog's).
VECTORS = {"dcgan": None, "stylegan2": DATA / "stylegan2_tiny_g_ema.pt",
           "proggan": DATA / "proggan_tiny.pth", "stylegan2-ada": DATA / "sg2ada_tiny.pkl",
           "stylegan3": DATA / "sg3_tiny_t.pkl"}
#: The least cosine between the dW of the same edit solved on the CPU and on the GPU.
COSINE_FLOOR = 0.999
#: The largest and mean |pixel difference| (grey levels of 255) allowed between the GPU's
#: images (float32, TF32 off) and the CPU's.
IMAGE_TOLERANCE = {"max": 8.0, "mean": 0.5}
HALF = {"float16": torch.float16, "bfloat16": torch.bfloat16}
VISITORS = 4
#: The layers the statistics figure reads: a 64x64 grid (the DCGAN's largest is 32x32 keys to
#: 64x64 values).
STATS_LAYER = {"dcgan": "main.12", "stylegan2": "layer10"}


@dataclass(frozen=True)
class Sizes:
    """How much one run does: its models, samples and repeats."""

    models: tuple[str, ...]
    compared: tuple[str, ...]
    stats_samples: int
    compare_samples: int
    held_out: int
    rounds: int
    repeats: int


ON_GPU = Sizes(("dcgan-digiface", "stylegan2-random-256", "stylegan2-random-1024"),
               ("dcgan-digiface", "stylegan2-random-256"), 1000, 200, 32, 2, 5)
ON_CPU = Sizes(("dcgan-digiface",), ("dcgan-digiface", "stylegan2-tiny"), 48, 32, 8, 1, 2)


def model(name: str, device: torch.device) -> Generator:
    """One of the check's models on `device` (a private copy, except the shared DCGAN)."""
    if name == "dcgan-digiface":
        return load_model(name) if device.type != "cpu" else cpu_copy("dcgan")
    if name == "stylegan2-tiny":
        return build_from_file(VECTORS["stylegan2"], "stylegan2").to(device)
    return random_stylegan2(int(name.rsplit("-", 1)[1])).to(device)


def request_for(generator: Generator) -> EditRequest:
    """The check's edit: the README's eye-to-mouth on the DCGAN, a square of sample 1 pasted
    onto sample 2 on a StyleGAN2 (the benchmark's, scaled to its size)."""
    if generator.family == "dcgan":
        return read_request(ROOT / "examples" / "eye-to-mouth.json")
    scale = generator.image_size[0] / 256
    data = json.loads(json.dumps(STYLEGAN2_REQUEST))
    for role in ("copy", "paste"):
        data[role]["mask"] = [round(v * scale) for v in data[role]["mask"]]
    return parse_request({**data, "model": generator.name})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(run: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call, the device's queued work included."""
    _sync(device)
    started = time.perf_counter()
    run()
    _sync(device)
    return time.perf_counter() - started


def contracts(device: torch.device) -> dict[str, list[str]]:
    """(a) The contracts each built-in family breaks on the device (none: an empty list)."""
    return {family: [f"{c.name}: {c.reason}" for c in check_plugin(family, checkpoint)
                     if not c.passed]
            for family, checkpoint in VECTORS.items()}


def pixel_difference(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """The largest and mean |difference| of uint8 images, in grey levels."""
    difference = (a.int() - b.int()).abs().float()
    return {"max": float(difference.max()), "mean": float(difference.mean())}


def compare(name: str, device: torch.device, sizes: Sizes) -> dict:
    """(b) Samples 0-15 and the check's edit on the CPU and on the device."""
    on_device, on_cpu = model(name, device), model(name, CPU)
    numbers = range(16)
    expected = render(on_cpu, numbers)
    with exact_matmul():
        exact = pixel_difference(render(on_device, numbers), expected)
    deltas = []
    for generator in (on_cpu, on_device):  # each computes its own statistics
        request = request_for(generator)
        with tempfile.TemporaryDirectory() as cache, exact_matmul():
            stats = key_stats(generator, generator.layer(request.layer), request.truncation,
                              sizes.compare_samples, cache_dir=Path(cache))
            deltas.append(execute(generator, request, stats=stats).delta.dense().flatten())
    cosine = float(torch.nn.functional.cosine_similarity(*(d.double() for d in deltas), dim=0))
    return {"samples_tf32_off": exact, "samples_tf32_default": pixel_difference(
        render(on_device, numbers), expected), "delta_cosine": cosine,
        "passed": cosine >= COSINE_FLOOR and all(exact[k] <= v for k, v in
                                                   IMAGE_TOLERANCE.items())}


def half_errors(device: torch.device) -> dict[str, dict]:
    """Half precision's pixel error against float32 on samples 0-15 of each family's test
    vector (random weights; the DCGAN's are real) on a GPU; nothing on the CPU."""
    if device.type == "cpu":
        return {}
    out = {}
    for family, checkpoint in VECTORS.items():
        generator = (model("dcgan-digiface", device) if checkpoint is None
                     else build_from_file(checkpoint, family).to(device))
        exact = render(generator, range(16))
        out[family] = {label: pixel_difference(with_precision(
            generator, dtype, lambda g=generator: render(g, range(16))), exact)
            for label, dtype in HALF.items()}
    return out


def throughput(generator: Generator, dtype: torch.dtype, repeats: int) -> float:
    """Images per second at batch 8 in `dtype` (raw output to uint8 images on the device)."""
    z = generator.latents(range(8))
    truncation = generator.check_truncation(None)

    def run() -> None:
        with render_precision(generator.device, dtype):
            generator.to_image(generator.synthesize(z, truncation).float())

    run()
    return 8 / statistics.median(seconds(run, generator.device) for _ in range(repeats))


def with_precision(generator: Generator, dtype: torch.dtype, run: Callable[[], object]) -> object:
    """`run()` with the generator rendering in `dtype`."""
    saved, generator.render_dtype = generator.render_dtype, dtype
    try:
        return run()
    finally:
        generator.render_dtype = saved


def first_edit(generator: Generator, sizes: Sizes) -> dict[str, float]:
    """Seconds of the first edit with nothing cached: statistics, solve, measures."""
    request = request_for(generator)
    spec = generator.layer(request.layer)
    readings.clear()
    with tempfile.TemporaryDirectory() as cache:
        found: dict = {}
        parts = {
            "statistics": lambda: found.update(stats=key_stats(
                generator, spec, request.truncation, sizes.stats_samples, cache_dir=Path(cache))),
            "solve": lambda: found.update(result=execute(generator, request,
                                                         stats=found["stats"])),
            "measures": lambda: RuleProbe(generator, found["result"].problem,
                                          held_out_samples(sizes.held_out)).measure(
                EditStack(generator, [found["result"].delta]).weights()),
        }
        out = {part: seconds(run, generator.device) for part, run in parts.items()}
    return {**out, "delta": out["statistics"] + out["solve"], "total": sum(out.values())}


def visitors(generator: Generator, sizes: Sizes) -> dict[str, float]:
    """Seconds of Execute (solve, probe, before/after pictures of the 6 samples where the rule
    fires most) for VISITORS at once, statistics cached: p50 and p95 over the rounds."""
    request = request_for(generator)
    with tempfile.TemporaryDirectory() as cache:
        stats = key_stats(generator, generator.layer(request.layer), request.truncation,
                          sizes.stats_samples, cache_dir=Path(cache))

    def one() -> float:
        def run() -> None:
            result = execute(generator, request, stats=stats)
            shown = RuleProbe(generator, result.problem, held_out_samples(32)).strongest(6)
            render(generator, shown)
            render(generator, shown, None, EditStack(generator, [result.delta]).weights())
        return seconds(run, generator.device)

    one()  # kernels and the held-out readings, once
    with ThreadPoolExecutor(VISITORS) as pool:
        times = sorted(t for _ in range(sizes.rounds)
                       for t in pool.map(lambda _: one(), range(VISITORS)))
    return {"p50": statistics.median(times), "p95": times[min(len(times) - 1,
                                                             round(0.95 * len(times)))],
            "visitors": VISITORS, "rounds": sizes.rounds}


def benchmark(name: str, device: torch.device, sizes: Sizes) -> dict:
    """(c) One model's figures on the device, in float32 and (on a GPU) half precision."""
    generator = model(name, device)
    precisions = {"float32": torch.float32, **(HALF if device.type != "cpu" else {})}
    numbers = range(16)
    exact = render(generator, numbers)
    out: dict = {"throughput_batch_8": {}, "half_error": {}, "visitors": {}}
    for label, dtype in precisions.items():
        out["throughput_batch_8"][label] = throughput(generator, dtype, sizes.repeats)
        if dtype != torch.float32:
            out["half_error"][label] = pixel_difference(
                with_precision(generator, dtype, lambda: render(generator, numbers)), exact)
    spec = generator.layer(STATS_LAYER[generator.family])
    with tempfile.TemporaryDirectory() as cache:
        out["statistics"] = {"layer": spec.name, "samples": sizes.stats_samples,
                             "seconds": seconds(lambda: key_stats(
                                 generator, spec, generator.check_truncation(None),
                                 sizes.stats_samples, cache_dir=Path(cache)), device)}
    out["first_edit"] = first_edit(generator, sizes)
    for label in ("float32", "float16"):
        if label in precisions:
            out["visitors"][label] = with_precision(generator, precisions[label],
                                                    lambda: visitors(generator, sizes))
    return out


def check(device: torch.device, sizes: Sizes, log: Callable[[str], None]) -> dict:
    """(a), (b) and (c) on `device`; `passed` says whether every check held."""
    started = time.perf_counter()
    report: dict = {"machine": machine(), "device": str(device),
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                    "tolerance": {"images": IMAGE_TOLERANCE, "delta_cosine": COSINE_FLOOR}}
    parts = {"contracts": lambda: contracts(device),
             "compared": lambda: {name: compare(name, device, sizes) for name in sizes.compared},
             "half_error_by_family": lambda: half_errors(device),
             "benchmarks": lambda: {name: benchmark(name, device, sizes) for name in sizes.models}}
    report["seconds_by_part"] = {}
    for part, run in parts.items():
        log(f"{part} ...")
        begun = time.perf_counter()
        report[part] = run()
        report["seconds_by_part"][part] = time.perf_counter() - begun
    report["passed"] = (not any(report["contracts"].values())
                        and all(c["passed"] for c in report["compared"].values()))
    report["seconds"] = time.perf_counter() - started
    return report


def table(report: dict) -> str:
    """The report as plain text: the checks, then one row per model and precision."""
    lines = [f"GPU check on {report['device']} ({report['gpu'] or report['machine']['machine']})"]
    for family, failed in report["contracts"].items():
        lines.append(f"  contracts {family:14} {'ok' if not failed else 'FAIL: ' + failed[0]}")
    for family, errors in report["half_error_by_family"].items():
        lines.append(f"  half precision {family:14} " + ", ".join(
            f"{label} max/mean {e['max']:.0f}/{e['mean']:.3f}" for label, e in errors.items()))
    for name, c in report["compared"].items():
        off, on = c["samples_tf32_off"], c["samples_tf32_default"]
        lines.append(f"  vs CPU {name:24} pixels max/mean {off['max']:.0f}/{off['mean']:.3f} "
                     f"(TF32 default {on['max']:.0f}/{on['mean']:.3f}), dW cosine "
                     f"{c['delta_cosine']:.5f}  {'ok' if c['passed'] else 'FAIL'}")
    lines.append(f"  {'model':24} {'precision':9} {'img/s b8':>9} {'half err':>9} "
                 f"{'stats s':>8} {'1st edit s':>10} {'exec p50':>9} {'p95':>6}")
    for name, b in report["benchmarks"].items():
        for label, rate in b["throughput_batch_8"].items():
            error = b["half_error"].get(label)
            float32 = label == "float32"
            cells = ["-" if error is None else f"{error['max']:.0f}/{error['mean']:.2f}",
                     f"{b['statistics']['seconds']:.2f}" if float32 else "-",
                     f"{b['first_edit']['total']:.2f}" if float32 else "-"]
            execute_ = b["visitors"].get(label)
            cells += ([f"{execute_['p50']:.3f}", f"{execute_['p95']:.3f}"] if execute_
                      else ["-", "-"])
            lines.append(f"  {name:24} {label:9} {rate:9.1f} {cells[0]:>9} {cells[1]:>8} "
                         f"{cells[2]:>10} {cells[3]:>9} {cells[4]:>6}")
    lines.append(f"{'passed' if report['passed'] else 'FAILED'} in {report['seconds']:.0f} s")
    return "\n".join(lines)


def merge_into(path: Path, report: dict) -> None:
    """Write `report` under the `device` key of the JSON file at `path`, keeping its others."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data["device"] = report
    write_atomically(path, as_json(data))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; exit status 0 when it passed, 1 when a check failed, 2 on bad input."""
    parser = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--cpu", action="store_true", help="small sizes on the CPU")
    parser.add_argument("--device", default="cuda", help="the GPU (default cuda)")
    parser.add_argument("--json", help="merge the figures into this file under 'device' "
                        "(default: docs/bench.json on a GPU, nothing with --cpu)")
    args = parser.parse_args(argv)
    try:
        device = select_device("cpu" if args.cpu else args.device)
        if not args.cpu and device.type != "cuda":
            raise RewritingError(f"the GPU check needs a CUDA device, not {device} (use --cpu "
                                 "for the small run on the CPU)")
        out = args.json or (None if args.cpu else str(ROOT / "docs" / "bench.json"))
        if out is not None:
            check_output(out)
        report = check(device, ON_CPU if args.cpu else ON_GPU,
                       lambda line: print(line, file=sys.stderr, flush=True))
    except RewritingError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    print(table(report))
    if out is not None:
        merge_into(Path(out), report)
        print(f"wrote the figures under 'device' in {out}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
