"""The StyleGAN2 plugin reproduces rosinality's generator and exposes rewritable layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hooks import capture, max_err
from safetensors.torch import load_file

from plugins.dcgan import DCGANNet
from rewriting.errors import RewritingError
from rewriting.generator import layer_key, layer_value
from zoo.loader import build_from_file

DATA = Path(__file__).parents[1] / "data"
CHECKPOINT = DATA / "stylegan2_tiny_g_ema.pt"
REFERENCE = load_file(DATA / "stylegan2_tiny_reference.safetensors")
TOL = 1e-4


@pytest.fixture(scope="module")
def gen():
    return build_from_file(CHECKPOINT, "stylegan2")


def test_reads_architecture_from_shapes(gen):
    assert gen.family == "stylegan2"
    assert gen.z_dim == 32 and gen.image_size == (64, 64)
    assert gen.default_truncation == 0.5
    assert list(gen.layers) == [f"layer{n}" for n in range(2, 11)]
    assert gen.layer("layer2").module == "conv1"
    assert gen.layer("layer10").module == "convs.7"
    assert gen.layer("layer9").value_channels == 16 and gen.layer("layer10").key_channels == 16


def test_layer_grids(gen):
    for n in range(2, 11):
        spec = gen.layer(f"layer{n}")
        assert spec.weight == f"{spec.module}.conv.weight"
        assert spec.key_axis == 2 and not spec.linear
        assert gen.parameter(spec.weight).shape[2] == spec.key_channels
        assert spec.value_grid[0] == 4 * 2 ** ((n - 1) // 2)
        assert spec.stride == (2 if n % 2 and n > 2 else 1)


def test_mapping_matches_reference(gen):
    assert max_err(gen.net.style(REFERENCE["z"]), REFERENCE["w"]) < 1e-5


@pytest.mark.parametrize(("truncation", "key"), [(1.0, "image"), (0.7, "image_truncation_0.7")])
def test_image_matches_reference(gen, truncation, key):
    assert max_err(gen.synthesize(REFERENCE["z"], truncation), REFERENCE[key]) < TOL


def test_features_match_reference(gen):
    modules = ["conv1"] + [f"convs.{i}" for i in range(8)]
    seen = capture(gen.net, modules, lambda: gen.synthesize(REFERENCE["z"], 1.0))
    for m in modules:
        assert max_err(seen[m][1], REFERENCE[f"features.{m}"]) < TOL, m


def test_truncation_zero_gives_the_average_latent(gen):
    images = gen.synthesize(gen.latents([0, 1, 2]), 0.0)
    assert max_err(images[0], images[1]) < 1e-5 and max_err(images[0], images[2]) < 1e-5
    assert torch.equal(gen.synthesize(gen.latents([0]), None), gen.synthesize(gen.latents([0]), 1))
    assert gen.check_truncation(None) == 0.5


def test_sample_does_not_depend_on_batch(gen):
    z = gen.latents(range(6))
    batch = gen.synthesize(z, 0.5)
    for i in (0, 3, 5):
        assert max_err(gen.synthesize(gen.latents([i]), 0.5)[0], batch[i]) < 1e-5


def test_to_image_maps_minus_one_to_one(gen):
    raw = torch.tensor([-1.0, 0.0, 1.0]).reshape(1, 3, 1, 1)
    assert gen.to_image(raw).flatten().tolist() == [0, 128, 255]
    images = gen.to_image(gen.synthesize(gen.latents([0, 1])))
    assert images.shape == (2, 64, 64, 3) and images.dtype == torch.uint8


def test_unedited_weight_override_is_identical(gen):
    z = gen.latents([0, 1])
    base = gen.synthesize(z, 0.5)
    for spec in gen.layers.values():
        weights = {spec.weight: gen.parameter(spec.weight).clone()}
        assert torch.equal(gen.synthesize(z, 0.5, weights=weights), base), spec.name


@pytest.mark.parametrize("name", ["layer2", "layer7", "layer8", "layer9"])
def test_layer_value_is_the_layer(gen, name):
    """f(k; W) equals the module's output, for the base weight and for an edited one."""
    spec = gen.layer(name)
    module = gen.net.get_submodule(spec.module)
    z = gen.latents([0, 1])
    inputs, output = capture(gen.net, [spec.module], lambda: gen.synthesize(z, 0.5))[spec.module]
    key = layer_key(module, inputs)
    assert key.shape[1:] == (spec.key_channels, *spec.key_grid)
    assert output.shape[1:] == (spec.value_channels, *spec.value_grid)
    w0 = gen.parameter(spec.weight)
    torch.testing.assert_close(layer_value(module, key, w0, inputs), output)

    edited = w0 + 0.3 * torch.randn(w0.shape, generator=torch.Generator().manual_seed(0))
    inputs1, output1 = capture(
        gen.net, [spec.module], lambda: gen.synthesize(z, 0.5, weights={spec.weight: edited})
    )[spec.module]
    assert max_err(output1, output) > 1e-2
    torch.testing.assert_close(layer_value(module, key, edited, inputs), output1)


def test_state_dict_round_trips(gen, tmp_path):
    path = tmp_path / "export.pt"
    torch.save(gen.net.state_dict(), path)
    again = build_from_file(path, "stylegan2")
    assert torch.equal(again.net.latent_avg, gen.net.latent_avg)
    z = gen.latents([4])
    assert torch.equal(again.synthesize(z, 0.5), gen.synthesize(z, 0.5))


def test_missing_latent_avg_is_estimated(tmp_path):
    checkpoint = torch.load(CHECKPOINT, weights_only=True)
    path = tmp_path / "bare.pt"
    torch.save(checkpoint["g_ema"], path)
    bare = build_from_file(path, "stylegan2")
    assert max_err(bare.net.latent_avg, checkpoint["latent_avg"]) < 0.2
    assert max_err(bare.synthesize(REFERENCE["z"], 1.0), REFERENCE["image"]) < TOL


@pytest.mark.parametrize(
    ("drop", "message"),
    [("convs.3.noise.weight", "convs.3.noise.weight"), ("noises.noise_4", "noises.noise_4"),
     ("style.1.weight", "style.1.weight"), ("convs.6.conv.weight", "convs.6.conv.weight"),
     ("convs.7.conv.weight", "convs.7.conv.weight"), ("input.input", "input.input")],
)
def test_rejects_missing_tensors(tmp_path, drop, message):
    checkpoint = torch.load(CHECKPOINT, weights_only=True)
    del checkpoint["g_ema"][drop]
    path = tmp_path / "broken.pt"
    torch.save(checkpoint, path)
    with pytest.raises(RewritingError, match=message):
        build_from_file(path, "stylegan2")


def test_rejects_inconsistent_shapes(tmp_path):
    checkpoint = torch.load(CHECKPOINT, weights_only=True)
    checkpoint["g_ema"]["convs.2.activate.bias"] = torch.zeros(7)
    path = tmp_path / "broken.pt"
    torch.save(checkpoint, path)
    with pytest.raises(RewritingError, match="convs.2.activate.bias"):
        build_from_file(path, "stylegan2")


def test_rejects_other_families(tmp_path):
    with pytest.raises(RewritingError, match="not a StyleGAN2 checkpoint"):
        build_from_file(DATA / "proggan_tiny.pth", "stylegan2")
    dcgan = tmp_path / "dcgan.tar"
    torch.save({"netG_state_dict": DCGANNet([8, 16, 8, 3]).state_dict()}, dcgan)
    with pytest.raises(RewritingError, match="not a StyleGAN2 checkpoint"):
        build_from_file(dcgan, "stylegan2")
    with pytest.raises(RewritingError, match="not a Progressive GAN checkpoint"):
        build_from_file(CHECKPOINT, "proggan")
    with pytest.raises(RewritingError, match="not a DCGAN checkpoint"):
        build_from_file(CHECKPOINT, "dcgan")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(gen):
    net = gen.net.to("cuda")
    try:
        with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            image = net(REFERENCE["z"].cuda(), truncation=0.7).cpu()
    finally:
        net.to("cpu")
    assert max_err(image, REFERENCE["image_truncation_0.7"]) < TOL
