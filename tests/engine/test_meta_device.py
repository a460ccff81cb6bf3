"""Every tensor the engine makes has an explicit device.

The whole path (statistics, directions, the solve, an edit and its measures, renders, a photo's
projection) runs with the model and its data on an explicit `cpu` device while PyTorch's
default device is `meta`: a tensor made without a device is a meta tensor, which fails where
it meets real data, the error a CUDA run meets first as "expected all tensors to be on the same
device". The plugins' contracts run the same way for every built-in family.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rewriting import readings
from rewriting.delta import Delta, EditStack
from rewriting.device import CPU, select_device
from rewriting.efficacy import RuleProbe
from rewriting.metrics import held_out_samples
from rewriting.paper import projected_adam
from rewriting.project import mean_image, project, render_latent
from rewriting.render import midway, render, render_resumed
from rewriting.request import parse_request, read_request
from rewriting.rewrite import execute, prepare_problem
from rewriting.stats import compute_key_stats, key_stats
from rewriting.suggest import suggest_layer
from zoo.conformance import check_generator
from zoo.loader import build_from_file, load_model

ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests" / "data"
#: Each built-in family's test vector (DCGAN: the embedded model).
VECTORS = {
    "stylegan2": DATA / "stylegan2_tiny_g_ema.pt",
    "proggan": DATA / "proggan_tiny.pth",
    "stylegan2-ada": DATA / "sg2ada_tiny.pkl",
    "stylegan3": DATA / "sg3_tiny_t.pkl",
}


@contextmanager
def default_meta() -> Iterator[None]:
    """PyTorch's default device is `meta` inside the block; nothing kept from before is reused."""
    readings.clear()
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)
        readings.clear()


@pytest.fixture(scope="module")
def dcgan():
    """The embedded DCGAN on an explicit CPU device."""
    select_device("cpu")
    generator = load_model("dcgan-digiface")
    assert generator.device == CPU
    return generator


def test_a_tensor_without_a_device_fails_inside(dcgan):
    with default_meta(), pytest.raises((RuntimeError, NotImplementedError)):
        float((torch.zeros(3) + dcgan.latents([0])[0, :3]).sum())


def test_statistics_edit_measures_and_renders(dcgan, tmp_path):
    request = read_request(ROOT / "examples" / "eye-to-mouth.json")
    spec = dcgan.layer(request.layer)
    with default_meta():
        stats = key_stats(dcgan, spec, None, samples=48, cache_dir=tmp_path)
        again = key_stats(dcgan, spec, None, samples=48, cache_dir=tmp_path)  # from the cache
        assert torch.equal(stats.second_moment, again.second_moment)
        result = execute(dcgan, request, stats=stats)
        after = EditStack(dcgan, [result.delta]).weights()
        probe = RuleProbe(dcgan, result.problem, held_out_samples(16))
        measured = probe.measure(after)
        floor = probe.floor(after, rank=1, seeds=1)
        images = render(dcgan, [0, 1, 2], None, after)
        resumed, _ = render_resumed(dcgan, midway(dcgan, dcgan.latents([3]), spec.module), after)
        state = EditStack(dcgan, [result.delta]).state_dict()
    assert result.delta.lam.device == CPU and images.device == CPU and resumed.device == CPU
    assert images.shape == (3, 64, 64, 3) and state[spec.weight].device == CPU
    assert measured["efficacy"] > floor["efficacy"]
    assert torch.equal(images, render(dcgan, [0, 1, 2], None, after))


@pytest.mark.slow
def test_every_method_and_goal(dcgan, tmp_path):
    base = read_request(ROOT / "examples" / "eye-to-mouth.json")
    stats = compute_key_stats(dcgan, dcgan.layer(base.layer), None, samples=32)
    erase = replace(base, copy=None, erase=8)
    with default_meta():
        for request in (base, replace(base, method="dense"), replace(base, goal="paste"),
                        replace(base, goal="context"), erase):
            result = execute(dcgan, request, stats=stats)
            assert torch.isfinite(result.delta.lam).all()
        problem = prepare_problem(dcgan, replace(base, method="paper", grid="paper"),
                                  stats=stats)
        run = projected_adam(problem.module, problem.spec, problem.weight,
                             problem.rule_directions, problem.keys, problem.inputs,
                             problem.goal, steps=3)
        stacked = execute(dcgan, base, EditStack(dcgan, [result.delta]), stats)
        saved = tmp_path / "delta.safetensors"
        stacked.delta.save(saved)
        loaded = EditStack(dcgan, [result.delta, Delta.load(saved)])
        render(dcgan, [5], None, loaded.weights())
    assert np.isfinite(run.l1_after)


@pytest.mark.slow
def test_layer_suggestion(dcgan, monkeypatch, tmp_path):
    monkeypatch.setenv("REWRITING_CACHE", str(tmp_path))
    request = read_request(ROOT / "examples" / "eye-to-mouth.json")
    with default_meta():
        found = suggest_layer(dcgan, request, held_out_samples(12), stats_samples=16)
    assert found.layer in dcgan.layers


@pytest.mark.slow
def test_projection(dcgan, tmp_path):
    photo = render(dcgan, [1001])[0].numpy()
    with default_meta():
        found = project(dcgan, photo, steps=3, starts=2)
        found.save(tmp_path / "latent.safetensors")
        shown = render_latent(dcgan, found)
        mean_image(dcgan, 16)
    assert found.latent.device == CPU and shown.device == CPU
    assert found.metrics["psnr"] > 0


@pytest.mark.slow
def test_stylegan2_edit_and_projection(tmp_path):
    select_device("cpu")
    generator = build_from_file(VECTORS["stylegan2"], "stylegan2")
    size = generator.image_size[0]
    box = [size // 4, size // 4, 3 * size // 4, 3 * size // 4]
    request = parse_request({"model": generator.name, "layer": "layer4",
                             "copy": {"sample": 1, "mask": box},
                             "paste": {"sample": 2, "mask": box}})
    with default_meta():
        stats = compute_key_stats(generator, generator.layer("layer4"), 0.5, samples=16)
        result = execute(generator, request, stats=stats)
        after = EditStack(generator, [result.delta]).weights()
        RuleProbe(generator, result.problem, held_out_samples(4)).measure(after)
        photo = render(generator, [3], 0.5)[0].numpy()
        found = project(generator, photo, steps=2, starts=2)
        render_latent(generator, found, after)
    assert result.solution.solver == "iterative" and found.latent.device == CPU


@pytest.mark.parametrize("family", ["dcgan", *(pytest.param(f, marks=pytest.mark.slow)
                                               if f == "stylegan3" else f for f in VECTORS)])
def test_every_family_keeps_its_contracts_with_explicit_devices(family, dcgan):
    generator = dcgan if family == "dcgan" else build_from_file(VECTORS[family], family)
    with default_meta():
        checks = check_generator(generator)
    failed = {c.name: c.reason for c in checks if not c.passed}
    assert failed == {}
