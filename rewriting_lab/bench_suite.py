"""The benchmark's parts as `python -m rewriting bench` runs them, one dict of figures each."""

from __future__ import annotations

from pathlib import Path

import torch

from plugins.base import LocalFile, ModelEntry
from plugins.stylegan2 import PLUGIN, StyleGAN2Net
from rewriting.early import EARLY_SAMPLES
from rewriting.errors import RewritingError
from rewriting.generator import Generator
from rewriting.project import STEPS
from rewriting.request import EditRequest, parse_request
from rewriting.stats import default_cache_dir

from . import bench
from .app_process import ROOT
from .reference_stylegan2 import reference_images, reference_pair

#: The benchmark's edit on the random StyleGAN2: a square of sample 1 pasted onto sample 2.
STYLEGAN2_REQUEST = {
    "model": "stylegan2-random-256", "layer": "layer8",
    "copy": {"sample": 1, "mask": [96, 96, 160, 160]},
    "paste": {"sample": 2, "mask": [96, 96, 160, 160]},
}


def random_stylegan2(size: int = 256) -> Generator:
    """A StyleGAN2 of config-f shapes with random weights (speed only: no download needed)."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    channels = [table[4 * 2**j] for j in range(size.bit_length() - 2)]
    torch.manual_seed(0)
    net = StyleGAN2Net(512, 8, channels)
    entry = ModelEntry(
        f"stylegan2-random-{size}", "stylegan2", LocalFile("(random)"), "none",
        default_layer="layer8",
    )
    return PLUGIN.build({"g_ema": net.state_dict()}, entry, "random")


def default_model(generator: Generator, request: EditRequest, repeats: int, quick: bool,
                  searched: list[EditRequest]) -> dict:
    """The default model's figures: throughput, statistics, the per-request search over
    `searched`, one edit five ways, memory and projection (fewer statistics samples,
    projections and steps, and only the first request searched, when `quick`)."""
    return {
        "search": bench.search_cost(generator, searched[:1] if quick else searched),
        "throughput_batch_1": bench.throughput(generator, 1, repeats * 4),
        "throughput_batch_64": bench.throughput(generator, 64, repeats),
        "statistics": bench.statistics_cost(generator, None, 200 if quick else 1000, repeats),
        "edit": bench.edit_cost(generator, request, repeats * 2),
        "memory": bench.memory(generator, request),
        "projection": bench.projection_cost(generator, 2 if quick else 4,
                                            50 if quick else STEPS),
    }


def stylegan2(repeats: int, quick: bool, checkout: str | None) -> dict:
    """The random 256 px StyleGAN2's figures: throughput, statistics, the first edit with
    nothing cached, and (with a checkout) rosinality's reference beside it."""
    big = random_stylegan2()
    return {
        "throughput_batch_1": bench.throughput(big, 1, repeats),
        "throughput_batch_8": bench.throughput(big, 8, max(1, repeats // 2)),
        "statistics": bench.statistics_cost(big, "layer8", 20 if quick else 1000, 1),
        **bench.first_edit(big, parse_request(STYLEGAN2_REQUEST), *(
            (10, 30) if quick else (EARLY_SAMPLES, 1000))),
        **versus_reference(checkout, repeats),
    }


def versus_reference(checkout: str | None, repeats: int) -> dict:
    """Our StyleGAN2 against rosinality's (a checkout at `checkout`) at 256 px, same weights,
    batch 1; the figures are null without a checkout."""
    if checkout is None:
        return {"reference_throughput_batch_1": None, "speedup_vs_reference": None,
                "reference": None}
    reference, ours = reference_pair(Path(checkout))
    side = bench.versus_reference(lambda z: ours.synthesize(z, None),
                                  lambda z: reference_images(reference, z),
                                  ours.latents(range(1)), repeats)
    return {"reference_throughput_batch_1": side["reference_images_per_second"],
            "speedup_vs_reference": side["speedup"], "reference": side}


#: Why the app's latencies cannot be measured here ({} says what is missing).
APP_NEEDS = ("the app benchmark needs app.py and gradio_client ({}): run from the repository "
             "with the test requirements, or pass --no-app")


def app_latency(visitors: int, rounds: int) -> dict:
    """The running app's latencies (`app_bench`, which needs the checkout's app.py and the test
    requirement gradio_client, so it is imported only when asked for), and the first example's
    Execute on fresh servers (`first_execute`)."""
    if not (ROOT / "app.py").is_file():
        raise RewritingError(APP_NEEDS.format(f"no app.py in {ROOT}"))
    try:
        from . import app_bench, first_execute
    except ImportError as err:
        raise RewritingError(APP_NEEDS.format(err)) from None
    return {**app_bench.app_latency(visitors, rounds, default_cache_dir().parent),
            "first_execute": first_execute.first_execute()}
