"""The StyleGAN2-ADA and StyleGAN3 plugins reproduce NVIDIA's generators from their pickles."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hooks import capture
from nvidia_writer import Shape, SnapshotWriter
from safetensors.torch import load_file, save_file

from plugins.base import LocalFile, ModelEntry
from rewriting.errors import RewritingError
from rewriting.generator import layer_key, layer_value, paper_latents
from rewriting_cli.main import main
from zoo.conformance import check_generator
from zoo.loader import build_from_file
from zoo.nvidia_pickle import PersistentNet

DATA = Path(__file__).parents[1] / "data"
TOL = 1e-4
# family: fixture stem, and the rewritable layers the family's users know.
CASES = {
    "stylegan2-ada": ("sg2ada_tiny", ["b4.conv1"] + [f"b{r}.conv{i}" for r in (8, 16, 32)
                                                      for i in (0, 1)]),
    "stylegan3": ("sg3_tiny_t", [f"L{i}_36_32" for i in range(5)]
                  + [f"L{i}_52_32" for i in range(5, 9)]
                  + ["L9_52_27", "L10_52_23", "L11_52_19", "L12_52_16", "L13_32_16"]),
}


def rel_err(got: torch.Tensor, expected: torch.Tensor) -> float:
    """Relative max error: the largest absolute difference over the reference's largest value."""
    assert got.shape == expected.shape
    return ((got - expected).abs().max() / expected.abs().max()).item()


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    family = request.param
    stem, layers = CASES[family]
    gen = build_from_file(DATA / f"{stem}.pkl", family)
    return family, gen, load_file(DATA / f"{stem}_reference.safetensors"), layers


def test_configuration_comes_from_the_file(case):
    family, gen, ref, layers = case
    assert gen.family == family and list(gen.layers) == layers
    assert gen.z_dim == ref["z"].shape[1] and gen.image_size == tuple(ref["img"].shape[2:])
    assert gen.net.mapping.num_ws == ref["w"].shape[1]


@pytest.mark.parametrize(("psi", "w_key", "img_key"), [(1.0, "w", "img"),
                                                       (0.5, "w_trunc", "img_trunc")])
def test_mapping_and_image_match_the_reference(case, psi, w_key, img_key):
    _, gen, ref, _ = case
    with torch.no_grad():
        w = gen.net.mapping(ref["z"], None, psi)
    assert rel_err(w, ref[w_key]) < TOL
    assert rel_err(gen.synthesize(ref["z"], psi), ref[img_key]) < TOL


def test_every_stored_layer_feature_matches(case):
    _, gen, ref, _ = case
    features = {k: v for k, v in ref.items() if k.startswith("feat")}
    modules = {k: "synthesis." + k.split(".", 1)[1] for k in features}
    seen = capture(gen.net, sorted(set(modules.values())), lambda: gen.synthesize(ref["z"], 1.0))
    assert len(features) >= 7
    for key, expected in features.items():
        got = seen[modules[key]][1]
        if key.startswith("feat0."):  # features of sample 0 only
            got = got[:1]
        assert rel_err(got, expected) < TOL, key


def test_rewrite_key_and_value_reproduce_each_layer(case):
    _, gen, ref, layers = case
    z = gen.latents([5])
    seen = capture(gen.net, [gen.layer(n).module for n in layers], lambda: gen.synthesize(z, 0.5))
    for name in layers:
        spec = gen.layer(name)
        inputs, output = seen[spec.module]
        module = gen.net.get_submodule(spec.module)
        key = layer_key(module, inputs)
        assert key.shape[1] == spec.key_channels and tuple(key.shape[2:]) == spec.key_grid
        assert tuple(output.shape[2:]) == spec.value_grid
        assert output.shape[1] == spec.value_channels
        value = layer_value(module, key, gen.parameter(spec.weight), inputs)
        assert torch.allclose(value, output, atol=1e-6), name
        changed = layer_value(module, key, gen.parameter(spec.weight) * 1.5 + 0.01, inputs)
        assert not torch.allclose(changed, output, atol=1e-3), name


def test_samples_follow_the_project_numbering(case):
    _, gen, _, _ = case
    assert torch.equal(gen.latents([3, 1]), paper_latents(gen.z_dim, [3, 1]))
    batch = gen.synthesize(gen.latents(range(3)), 0.5)
    single = gen.synthesize(gen.latents([2]), 0.5)
    assert (batch[2] - single[0]).abs().max() < 1e-5
    assert gen.check_truncation(None) == 0.5


def test_convert_then_sample_equals_the_pickle(tmp_path, case, capsys):
    family, gen, ref, _ = case
    stem = CASES[family][0]
    out = tmp_path / "converted"
    assert main(["convert", str(DATA / f"{stem}.pkl"), "--out", str(out)]) == 0
    config = __import__("json").loads((out / "config.json").read_text())
    assert config["family"] == family and config["init_kwargs"] == gen_kwargs(stem)
    assert config["source_sha256"] == gen.weights_sha256
    converted = build_from_file(out, family)
    from zoo.loader import load_model

    assert load_model(str(out)).family == family  # a converted folder loads by its path
    from zoo.hub import provenance

    assert config["license"] == "nvidia-source-code-license-nc"  # NVIDIA's, into pushed cards
    assert provenance(load_model(str(out)))["license"] == config["license"]
    from zoo.checkpoint import read_checkpoint
    from zoo.fetch import resolve

    folder = resolve(LocalFile(str(out)))  # and as a catalog entry's LocalFile
    assert read_checkpoint(folder)["nvidia_kwargs"] == config["init_kwargs"]
    z = ref["z"][:3]
    assert torch.equal(converted.synthesize(z, 0.5), gen.synthesize(z, 0.5))
    capsys.readouterr()
    assert main(["convert", str(DATA / f"{stem}.pkl"), "--out", str(out)]) == 2
    assert "not an empty folder" in capsys.readouterr().err


def gen_kwargs(stem: str) -> dict:
    from zoo.nvidia_pickle import read_network_pickle

    return read_network_pickle(DATA / f"{stem}.pkl")["nvidia_kwargs"]


# The default (no truncation) belongs to the command, not the family: checked once.
@pytest.mark.parametrize(("family", "truncation"), [("stylegan2-ada", None),
                                                    ("stylegan2-ada", "0.5"), ("stylegan3", "0.5")])
def test_raw_sample_command_matches_the_reference(tmp_path, family, truncation, capsys):
    ref = load_file(DATA / f"{CASES[family][0]}_reference.safetensors")
    save_file({"z": ref["z"]}, tmp_path / "z.safetensors")
    args = ["sample", "--checkpoint", str(DATA / f"{CASES[family][0]}.pkl"), "--family", family,
            "--latents", str(tmp_path / "z.safetensors"), "--raw", str(tmp_path / "out.st")]
    args += ["--truncation", truncation] if truncation else []
    assert main(args) == 0, capsys.readouterr().err
    image = load_file(tmp_path / "out.st")["image"]
    assert rel_err(image, ref["img_trunc" if truncation else "img"]) < TOL


def test_the_wrong_family_is_a_clear_error():
    other = {"stylegan2-ada": "sg3_tiny_t", "stylegan3": "sg2ada_tiny"}
    for family in CASES:
        with pytest.raises(RewritingError, match="not a .* checkpoint"):
            build_from_file(DATA / f"{other[family]}.pkl", family)


def _tree(module: torch.nn.Module, kwargs: dict) -> PersistentNet:
    """A module as the pickle reader returns networks (class names, tensors, children)."""
    buffers = {k: v for k, v in module._buffers.items() if k != "config_json"}  # ours only
    return PersistentNet(
        type(module).__name__, (), kwargs, dict(module._parameters), buffers,
        {k: _tree(c, {}) for k, c in module._modules.items() if c is not None},
    )


def _randomized(net: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if not tensor.is_floating_point():  # the kwargs' JSON bytes
                continue
            # mapping weights are stored divided by the learning-rate multiplier 0.01, as trained
            scale = 50.0 if name.startswith("mapping.fc") and name.endswith("weight") else 0.5
            tensor.copy_(torch.randn_like(tensor) * scale)
    return net


def _as_pickle(net: torch.nn.Module, kwargs: dict, path: Path) -> dict:
    from zoo.nvidia_pickle import read_network_pickle

    path.write_bytes(SnapshotWriter(Shape(keys=("G_ema",))).snapshot({"G_ema": _tree(net, kwargs)}))
    return read_network_pickle(path)


def test_stylegan3_config_r_loads_from_its_kwargs(tmp_path):
    """Config r (1x1 kernels, radial down filters, doubled channels) at 16 px, from the file."""
    from plugins.stylegan3 import build_net
    from zoo.registry import plugin

    kwargs = {"z_dim": 8, "w_dim": 8, "c_dim": 0, "img_resolution": 16, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 2}, "channel_base": 256, "channel_max": 16,
              "conv_kernel": 1, "use_radial_filters": True, "magnitude_ema_beta": 0.999}
    torch.manual_seed(0)
    net = _randomized(build_net(kwargs))
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("magnitude_ema"):
                tensor.fill_(1.3)
    checkpoint = _as_pickle(net, kwargs, tmp_path / "r.pkl")
    entry = ModelEntry("r", "stylegan3", LocalFile(str(tmp_path / "r.pkl")), "unknown")
    gen = plugin("stylegan3").build(checkpoint, entry, "x")
    layers = [gen.net.synthesis.get_submodule(n) for n in gen.net.synthesis.layer_names]
    assert all(layer.weight.shape[-1] == 1 for layer in layers)
    radial = [layer.down_filter.ndim == 2 for layer in layers if layer.down_filter is not None]
    assert radial[0] and not radial[-1]  # critically sampled layers keep separable filters
    z = gen.latents([0, 1, 2])
    image = gen.synthesize(z, 1.0)
    assert image.shape == (3, 3, 16, 16) and torch.isfinite(image).all()
    assert (image[0] - image[1]).abs().max() > 1e-3
    assert torch.equal(gen.synthesize(z[1:2], 1.0)[0], gen.synthesize(z[1:2], 1.0)[0])


@pytest.mark.parametrize("architecture", ["resnet", "orig"])
def test_other_configurations_load_from_their_kwargs(tmp_path, architecture):
    """A conditional 16px StyleGAN2-ADA of another architecture: all of it read from the file."""
    from plugins.stylegan2_ada import build_net

    kwargs = {"z_dim": 8, "w_dim": 12, "c_dim": 3, "img_resolution": 16, "img_channels": 3,
              "mapping_kwargs": {"num_layers": 3},
              "synthesis_kwargs": {"channel_base": 128, "channel_max": 16, "conv_clamp": None,
                                   "architecture": architecture}}
    torch.manual_seed(0)
    net = _randomized(build_net(kwargs))
    path = tmp_path / "conditional.pkl"
    _as_pickle(net, kwargs, path)
    entry = ModelEntry("cond", "stylegan2-ada", LocalFile(str(path)), "unknown",
                       options={"label": 2})
    from zoo.nvidia_pickle import read_network_pickle
    from zoo.registry import plugin

    gen = plugin("stylegan2-ada").build(read_network_pickle(path), entry, "x")
    assert gen.image_size == (16, 16) and gen.c_dim == 3 and gen.label == 2
    assert hasattr(gen.net.synthesis.b8, "skip") == (architecture == "resnet")
    assert not hasattr(gen.net.synthesis.b8, "torgb") and hasattr(gen.net.synthesis.b16, "torgb")
    z = gen.latents([0, 1])
    assert z.shape == (2, 11) and torch.equal(z[:, 8:], torch.tensor([[0, 0, 1.0]] * 2))
    image = gen.synthesize(z, 1.0)
    assert image.shape == (2, 3, 16, 16)
    other = z.clone()
    other[:, 8:] = torch.tensor([1.0, 0, 0])
    assert (gen.synthesize(other, 1.0) - image).abs().max() > 1e-3
    checks = check_generator(gen)  # the conditional model keeps every contract of the engine
    assert [c for c in checks if not c.passed] == []
    assert any(c.name == "class labels" for c in checks)
    with pytest.raises(RewritingError, match="out of range"):
        plugin("stylegan2-ada").build(read_network_pickle(path), ModelEntry(
            "c", "stylegan2-ada", LocalFile(str(path)), "u", options={"label": 3}), "x")


def test_local_checkpoints_load_by_path(tmp_path):
    from zoo.loader import load_model

    rosinality = load_model(str(DATA / "stylegan2_tiny_g_ema.pt"))
    assert rosinality.family == "stylegan2" and rosinality.name.endswith("stylegan2_tiny_g_ema.pt")
    renamed = tmp_path / "rosinality.pkl"  # a torch.save zip named .pkl is not NVIDIA's format
    renamed.write_bytes((DATA / "stylegan2_tiny_g_ema.pt").read_bytes())
    assert build_from_file(renamed, "stylegan2").family == "stylegan2"
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(RewritingError, match="need a plugin"):
        load_model(str(tmp_path / "other.pt"))


def test_image_masks_land_on_the_cells_that_render_them(case):
    """A bump added where a box maps to on a layer's grid changes the image in that box (the
    StyleGAN3 grids carry margins around the picture; ignoring them moves the change away)."""
    from rewriting.masks import mask_image, to_grid
    from rewriting.nethook import replace_output

    _, gen, _, layers = case
    z = gen.latents([0])
    base = gen.synthesize(z, 0.5)
    box = [4, 20, 12, 28]
    for name in (layers[3], layers[-3]):
        spec = gen.layer(name)
        shares = []
        for margin in (spec.value_margin, 0):
            cover = to_grid(mask_image(box, gen.image_size), spec.value_grid, margin)
            net = gen.view()
            with replace_output(net, spec.module, lambda _i, out, c=cover: out + 3.0 * c):
                change = (gen.synthesize(z, 0.5, net=net) - base).abs().sum(1)[0]
            shares.append(float(change[4:12, 20:28].sum() / change.sum()))
        assert shares[0] > 0.15, name
        if spec.value_margin:
            assert shares[0] > 1.5 * shares[1], (name, shares)


def test_conv_clamp_from_the_kwargs_bounds_every_layer(case):
    """conv_clamp (256 in the fixtures, never reached) is read from the file and applied."""
    import copy

    from zoo.nvidia_pickle import read_network_pickle
    from zoo.registry import plugin

    family, gen, ref, layers = case
    checkpoint = copy.deepcopy(read_network_pickle(DATA / f"{CASES[family][0]}.pkl"))
    kwargs = checkpoint["nvidia_kwargs"]
    (kwargs["synthesis_kwargs"] if "synthesis_kwargs" in kwargs else kwargs)["conv_clamp"] = 0.05
    entry = ModelEntry("clamped", family, LocalFile("x"), "unknown")
    clamped = plugin(family).build(checkpoint, entry, "x")
    modules = [gen.layer(n).module for n in layers]
    z = ref["z"][:2]
    free = capture(gen.net, modules, lambda: gen.synthesize(z, 1.0))
    bound = capture(clamped.net, modules, lambda: clamped.synthesize(z, 1.0))
    for module in modules:
        # StyleGAN3 clamps before its downsampling filter, which can overshoot by its L1 norm.
        f = getattr(clamped.net.get_submodule(module), "down_filter", None)
        overshoot = 1.0 if f is None else float(f.abs().sum() ** (3 - f.ndim))
        assert free[module][1].abs().max() > 0.1, module
        assert bound[module][1].abs().max() <= 0.05 * overshoot + 1e-6, module
