"""The Progressive GAN plugin reproduces the GAN-dissection generator and its rewritable convs."""

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
CHECKPOINT = DATA / "proggan_tiny.pth"
REFERENCE = load_file(DATA / "proggan_tiny_reference.safetensors")
TOL = 1e-5
BLOCKS = [f"layer{i}" for i in range(1, 9)] + ["output_32x32"]


@pytest.fixture(scope="module")
def gen():
    return build_from_file(CHECKPOINT, "proggan")


def test_reads_architecture_from_shapes(gen):
    assert gen.family == "proggan"
    assert gen.z_dim == 32 and gen.image_size == (32, 32)
    assert [name for name, _ in gen.net.named_children()] == BLOCKS
    assert list(gen.layers) == BLOCKS[:-1]
    grids = [gen.layer(f"layer{i}").value_grid[0] for i in range(1, 9)]
    assert grids == [4, 4, 8, 8, 16, 16, 32, 32]
    assert gen.layer("layer1").key_grid == (1, 1) and gen.layer("layer5").value_channels == 16
    for spec in gen.layers.values():
        assert spec.module == f"{spec.name}.conv" and spec.weight == f"{spec.name}.conv.weight"
        assert spec.key_axis == 1 and spec.linear


def test_image_and_features_match_reference(gen):
    seen = capture(gen.net, BLOCKS, lambda: gen.synthesize(REFERENCE["z"]))
    assert max_err(gen.synthesize(REFERENCE["z"]), REFERENCE["image"]) < TOL
    for block in BLOCKS:
        assert max_err(seen[block][1], REFERENCE[f"features.{block}"]) < TOL, block


def test_no_truncation(gen):
    assert gen.default_truncation is None and gen.check_truncation(None) is None
    with pytest.raises(RewritingError, match="no truncation"):
        gen.check_truncation(0.5)


def test_sample_does_not_depend_on_batch(gen):
    batch = gen.synthesize(gen.latents(range(6)))
    for i in (0, 2, 5):
        assert max_err(gen.synthesize(gen.latents([i]))[0], batch[i]) < 1e-6


def test_unedited_weight_override_is_identical(gen):
    z = gen.latents([0, 1])
    base = gen.synthesize(z)
    for spec in gen.layers.values():
        weights = {spec.weight: gen.parameter(spec.weight).clone()}
        assert torch.equal(gen.synthesize(z, weights=weights), base), spec.name


@pytest.mark.parametrize("name", ["layer1", "layer4", "layer5"])
def test_layer_value_is_the_conv_output(gen, name):
    """f(k; W) equals the conv's output, for the base weight and for an edited one."""
    spec = gen.layer(name)
    module = gen.net.get_submodule(spec.module)
    z = gen.latents([0, 1])
    inputs, output = capture(gen.net, [spec.module], lambda: gen.synthesize(z))[spec.module]
    key = layer_key(module, inputs)
    assert key.shape[1:] == (spec.key_channels, *spec.key_grid)
    assert output.shape[1:] == (spec.value_channels, *spec.value_grid)
    w0 = gen.parameter(spec.weight)
    torch.testing.assert_close(layer_value(module, key, w0, inputs), output)

    edited = w0 + 0.3 * torch.randn(w0.shape, generator=torch.Generator().manual_seed(0))
    _, output1 = capture(
        gen.net, [spec.module], lambda: gen.synthesize(z, weights={spec.weight: edited})
    )[spec.module]
    assert max_err(output1, output) > 1e-2
    torch.testing.assert_close(layer_value(module, key, edited, inputs), output1)


def test_state_dict_round_trips(gen, tmp_path):
    path = tmp_path / "export.pth"
    torch.save({"state_dict": gen.net.state_dict()}, path)
    z = gen.latents([3])
    assert torch.equal(build_from_file(path, "proggan").synthesize(z), gen.synthesize(z))


@pytest.mark.parametrize(
    ("drop", "message"),
    [("layer4.wscale.b", "layer4.wscale.b"), ("layer3.conv.weight", "layer3.conv.weight"),
     ("layer8.conv.weight", "layer8.conv.weight"), ("output_32x32.conv.weight", "output_32x32")],
)
def test_rejects_missing_tensors(tmp_path, drop, message):
    state = torch.load(CHECKPOINT, weights_only=True)
    del state[drop]
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(RewritingError, match=message):
        build_from_file(path, "proggan")


def test_rejects_inconsistent_shapes(tmp_path):
    state = torch.load(CHECKPOINT, weights_only=True)
    state["layer6.conv.weight"] = torch.zeros(16, 16, 5, 5)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(RewritingError, match="layer6.conv.weight"):
        build_from_file(path, "proggan")


def test_rejects_other_families(tmp_path):
    dcgan = tmp_path / "dcgan.tar"
    torch.save({"netG_state_dict": DCGANNet([8, 16, 8, 3]).state_dict()}, dcgan)
    with pytest.raises(RewritingError, match="not a Progressive GAN checkpoint"):
        build_from_file(dcgan, "proggan")
    with pytest.raises(RewritingError, match="not a StyleGAN2 checkpoint"):
        build_from_file(CHECKPOINT, "stylegan2")
    with pytest.raises(RewritingError, match="not a DCGAN checkpoint"):
        build_from_file(CHECKPOINT, "dcgan")
