"""Networks sized from a file are checked before they are built: kwargs and shapes that lie.

Each hostile file (a converted folder's config.json, a state dict's `config_json`, a StyleGAN2,
Progressive GAN or DCGAN checkpoint, a safetensors header) must be refused with one line, and
refusing it may raise the process's peak memory by at most REFUSAL_BUDGET_MB: no network of the
size it claims is ever allocated. The real tiny checkpoints still load (the plugins' own tests
check that they render as the reference code does).
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from refusals import cheap_refusal, refused
from safetensors.torch import save_file

from plugins.nvidia import encode_config
from rewriting.limits import MAX_CHECKPOINT_TENSORS, MAX_CONFIG_BYTES, MAX_TORCH_PICKLE_BYTES
from zoo.checkpoint import CONFIG, WEIGHTS
from zoo.convert import convert
from zoo.loader import build_from_file, load_model

DATA = Path(__file__).parents[1] / "data"
NAN, INF = float("nan"), float("inf")
NVIDIA = {"stylegan2-ada": "sg2ada_tiny", "stylegan3": "sg3_tiny_t"}
NUMBER = "must be a whole number|must be a number|must be a power"

#: Values that are not a count, and the kwargs' counts they are tried on (zero too where a
#: count must be positive).
BAD_COUNTS = {"text": "512", "bool": True, "float": 1.5, "nan": NAN, "inf": INF,
              "negative": -4, "2^30": 2**30, "none": None, "list": [4]}
COUNT_KWARGS = {
    "stylegan2-ada": [("z_dim",), ("w_dim",), ("c_dim",), ("img_resolution",),
                      ("img_channels",), ("mapping_kwargs", "num_layers"),
                      ("synthesis_kwargs", "channel_base"), ("synthesis_kwargs", "channel_max"),
                      ("synthesis_kwargs", "kernel_size")],
    "stylegan3": [("z_dim",), ("w_dim",), ("img_resolution",), ("channel_base",),
                  ("channel_max",), ("num_layers",), ("conv_kernel",), ("filter_size",),
                  ("mapping_kwargs", "num_layers")],
}
BAD_REALS = {"text": "1", "bool": False, "nan": NAN, "inf": INF, "-inf": -INF, "negative": -1,
             "1e30": 1e30, "list": [1.0]}
REAL_KWARGS = {
    "stylegan2-ada": [("synthesis_kwargs", "conv_clamp"), ("mapping_kwargs", "lr_multiplier")],
    "stylegan3": [("conv_clamp",), ("first_cutoff",), ("output_scale",)],
}
#: Other lies about a family's kwargs, and the message each gets.
OTHER_KWARGS = {
    "sg2 zero z_dim": ("stylegan2-ada", ("z_dim",), 0, NUMBER),
    "sg2 zero channel_max": ("stylegan2-ada", ("synthesis_kwargs", "channel_max"), 0, NUMBER),
    "sg2 zero mapping layers": ("stylegan2-ada", ("mapping_kwargs", "num_layers"), 0, NUMBER),
    "sg2 resolution 48": ("stylegan2-ada", ("img_resolution",), 48, "power of 2"),
    "sg2 resolution 2^20": ("stylegan2-ada", ("img_resolution",), 2**20, NUMBER),
    "sg2 even kernel": ("stylegan2-ada", ("synthesis_kwargs", "kernel_size"), 4, "odd"),
    "sg2 channel_base too small": ("stylegan2-ada", ("synthesis_kwargs", "channel_base"), 8,
                                   "no channels"),
    "sg2 architecture unknown": ("stylegan2-ada", ("synthesis_kwargs", "architecture"), "evil",
                                 "must be one of"),
    "sg2 architecture number": ("stylegan2-ada", ("synthesis_kwargs", "architecture"), 3,
                                "must be one of"),
    "sg2 activation list": ("stylegan2-ada", ("synthesis_kwargs", "activation"), ["lrelu"],
                            "must be one of"),
    "sg2 use_noise number": ("stylegan2-ada", ("synthesis_kwargs", "use_noise"), 1,
                             "true or false"),
    "sg2 use_noise text": ("stylegan2-ada", ("synthesis_kwargs", "use_noise"), "yes",
                           "true or false"),
    "sg2 filter empty": ("stylegan2-ada", ("synthesis_kwargs", "resample_filter"), [],
                         "list of 1 to"),
    "sg2 filter 10^6 taps": ("stylegan2-ada", ("synthesis_kwargs", "resample_filter"),
                             [1] * 10**6, "list of 1 to"),
    "sg2 filter nan tap": ("stylegan2-ada", ("synthesis_kwargs", "resample_filter"),
                           [1, NAN, 3, 1], NUMBER),
    "sg2 synthesis_kwargs text": ("stylegan2-ada", ("synthesis_kwargs",), "big",
                                  "dict of constructor arguments"),
    "sg2 mapping_kwargs list": ("stylegan2-ada", ("mapping_kwargs",), [8], "dict of constructor"),
    "sg2 unknown kwarg": ("stylegan2-ada", ("evil",), 1, "unsupported constructor arguments"),
    "sg2 labels 2^30": ("stylegan2-ada", ("c_dim",), 2**30, NUMBER),
    "sg3 critical >= layers": ("stylegan3", ("num_critical",), 14, "below num_layers"),
    "sg3 stopband tiny": ("stylegan3", ("first_stopband",), 1e-300, NUMBER),
    "sg3 stopband rel nan": ("stylegan3", ("last_stopband_rel",), NAN, NUMBER),
    "sg3 margin 2^30": ("stylegan3", ("margin_size",), 2**30, NUMBER),
    "sg3 lrelu_upsampling 0": ("stylegan3", ("lrelu_upsampling",), 0, NUMBER),
    "sg3 radial text": ("stylegan3", ("use_radial_filters",), "true", "true or false"),
    "sg3 magnitude beta 2": ("stylegan3", ("magnitude_ema_beta",), 2, NUMBER),
    "sg3 w_avg_beta inf": ("stylegan3", ("mapping_kwargs", "w_avg_beta"), INF, NUMBER),
    "sg3 mapping activation": ("stylegan3", ("mapping_kwargs", "activation"), "tanh",
                               "must be one of"),
    "sg3 labels text": ("stylegan3", ("c_dim",), "10", NUMBER),
    # In range each, the network they describe is far over the limit (or has empty tensors).
    "sg2 z/w 8192 (the issue's)": ("stylegan2-ada", ("z_dim",), 8192, NUMBER),
    "sg2 channel_base 1": ("stylegan2-ada", ("synthesis_kwargs", "channel_base"), 1,
                                 "no channels"),
    "sg3 channel_base 1": ("stylegan3", ("channel_base",), 1, "empty tensor"),
}
#: Kwargs that are each in range but together describe a network over the size limit.
HUGE = {
    "stylegan2-ada": {"w_dim": 4096, "img_resolution": 2048,
                      "synthesis_kwargs": {"channel_base": 2**23, "channel_max": 4096}},
    "stylegan3": {"w_dim": 4096, "img_resolution": 2048, "channel_base": 2**23,
                  "channel_max": 4096},
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    """Each tiny NVIDIA fixture converted to a folder (config.json + model.safetensors)."""
    root = tmp_path_factory.mktemp("converted")
    for family, stem in NVIDIA.items():
        convert(DATA / f"{stem}.pkl", root / family)
    return {family: root / family for family in NVIDIA}


def _with(kwargs: dict, path: tuple[str, ...], value: object) -> dict:
    """A copy of `kwargs` with the argument at `path` (nested dicts) set to `value`."""
    changed = json.loads(json.dumps(kwargs))
    place = changed
    for key in path[:-1]:
        place = place.setdefault(key, {})
    place[path[-1]] = value
    return changed


def _folder(base: Path, out: Path, config: dict | str) -> Path:
    """A converted folder holding `config` (a dict, or raw text) and `base`'s weights."""
    out.mkdir()
    text = config if isinstance(config, str) else json.dumps(config)
    (out / CONFIG).write_text(text)
    (out / WEIGHTS).symlink_to(base / WEIGHTS)
    return out


def _hostile_folder(base: Path, out: Path, path: tuple[str, ...], value: object) -> Path:
    config = json.loads((base / CONFIG).read_text())
    config["init_kwargs"] = _with(config["init_kwargs"], path, value)
    return _folder(base, out, config)


def _cases(table: dict, families: dict) -> list:
    return [pytest.param(family, path, value, id=f"{family}-{'.'.join(path)}-{name}")
            for family, paths in families.items() for path in paths
            for name, value in table.items()]


@pytest.mark.parametrize(("family", "path", "value"), _cases(BAD_COUNTS, COUNT_KWARGS))
def test_kwargs_that_are_not_counts_are_refused(tmp_path, converted, family, path, value):
    folder = _hostile_folder(converted[family], tmp_path / "m", path, value)
    cheap_refusal(lambda: build_from_file(folder, family), f"{path[-1]} {NUMBER}")


@pytest.mark.parametrize(("family", "path", "value"), _cases(BAD_REALS, REAL_KWARGS))
def test_kwargs_that_are_not_finite_numbers_are_refused(tmp_path, converted, family, path, value):
    folder = _hostile_folder(converted[family], tmp_path / "m", path, value)
    cheap_refusal(lambda: build_from_file(folder, family), f"{path[-1]} must be a number")


@pytest.mark.parametrize("name", list(OTHER_KWARGS))
def test_other_kwargs_lies_are_refused(tmp_path, converted, name):
    family, path, value, message = OTHER_KWARGS[name]
    folder = _hostile_folder(converted[family], tmp_path / "m", path, value)
    cheap_refusal(lambda: build_from_file(folder, family), message)


@pytest.mark.parametrize("family", list(NVIDIA))
def test_kwargs_in_range_that_add_up_to_a_huge_network_are_refused(tmp_path, converted, family):
    config = json.loads((converted[family] / CONFIG).read_text())
    kwargs = config["init_kwargs"]
    for key, value in HUGE[family].items():
        kwargs[key] = {**kwargs.get(key, {}), **value} if isinstance(value, dict) else value
    folder = _folder(converted[family], tmp_path / "m", config)
    cheap_refusal(lambda: build_from_file(folder, family), "numbers; the limit is")


@pytest.mark.parametrize("family", list(NVIDIA))
def test_kwargs_that_disagree_with_the_tensors_are_refused(tmp_path, converted, family):
    path = ("synthesis_kwargs", "channel_max") if family == "stylegan2-ada" else ("channel_max",)
    folder = _hostile_folder(converted[family], tmp_path / "m", path, 48)
    cheap_refusal(lambda: build_from_file(folder, family), "inconsistent shapes|does not match")


@pytest.mark.parametrize("family", list(NVIDIA))
def test_weights_with_no_convolution_are_refused(tmp_path, converted, family):
    """The issue's 'weights file with no convolution': only the mapping network is stored."""
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(converted[family] / CONFIG, folder / CONFIG)
    state = build_from_file(converted[family], family).net.state_dict()
    save_file({k: v for k, v in state.items() if k.startswith("mapping.")}, folder / WEIGHTS)
    cheap_refusal(lambda: build_from_file(folder, family), "missing ['synthesis.")
    cheap_refusal(lambda: load_model(str(folder)), "missing ['synthesis.")


# ---- the converted folder's config.json -----------------------------------------------------

def _config(base: Path, **changes) -> dict:
    return {**json.loads((base / CONFIG).read_text()), **changes}


CONFIGS = {
    "not json": (lambda base: "{not json", "not valid JSON"),
    "100,000 deep": (lambda base: "[" * 100_000 + "]" * 100_000, "nested more than"),
    "5 MB": (lambda base: json.dumps({"pad": "x" * (5 * 2**20)}), "limit of"),
    "a list": (lambda base: "[1, 2]", "not a config written by `convert`"),
    "classes a list": (lambda base: _config(base, classes=["SynthesisInput"]), "'classes'"),
    "classes of numbers": (lambda base: _config(base, classes={"": 1}), "'classes'"),
    "family dcgan": (lambda base: _config(base, family="dcgan"), "'family'"),
    "family a list": (lambda base: _config(base, family=["stylegan3"]), "'family'"),
    "license 10 KB": (lambda base: _config(base, license="x" * 10_000), "'license'"),
    "kwargs a list": (lambda base: _config(base, init_kwargs=[1, 2]), "constructor kwargs"),
    "kwargs text numbers": (lambda base: _config(base, init_kwargs={
        **_config(base)["init_kwargs"], "z_dim": "32", "w_dim": "32"}), NUMBER),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_hostile_config_json_is_refused(tmp_path, converted, name):
    make, message = CONFIGS[name]
    folder = _folder(converted["stylegan3"], tmp_path / "m", make(converted["stylegan3"]))
    cheap_refusal(lambda: build_from_file(folder, "stylegan3"), message)
    cheap_refusal(lambda: load_model(str(folder)), message)


# ---- the config_json buffer of an exported state dict ---------------------------------------

def _config_json(state: dict) -> dict[str, object]:
    kwargs = json.loads(bytes(state["config_json"].tolist()))
    return {
        "z_dim 8192 w_dim 8192": (encode_config({**kwargs, "z_dim": 8192, "w_dim": 8192}),
                                  NUMBER),
        "resolution text": (encode_config({**kwargs, "img_resolution": "32"}), NUMBER),
        "float bytes": (state["config_json"].float(), "not a vector"),
        "over the limit": (torch.full((MAX_CONFIG_BYTES + 1,), 32, dtype=torch.uint8),
                           "not a vector"),
        "not json": (torch.tensor(list(b"{oops"), dtype=torch.uint8), "not valid JSON"),
        "deep json": (torch.tensor(list(b"[" * 5000 + b"]" * 5000), dtype=torch.uint8),
                      "nested more than"),
        "a json list": (torch.tensor(list(b"[1]"), dtype=torch.uint8), "constructor kwargs"),
        "two dims": (state["config_json"][None], "not a vector"),
    }


@pytest.mark.parametrize("case", list(_config_json({"config_json": encode_config({})})))
@pytest.mark.parametrize("family", list(NVIDIA))
def test_hostile_config_json_buffer_is_refused(tmp_path, converted, family, case):
    state = build_from_file(converted[family], family).net.state_dict()
    config, message = _config_json(state)[case]
    save_file({**state, "config_json": config.contiguous()}, tmp_path / "edited.safetensors")
    cheap_refusal(lambda: build_from_file(tmp_path / "edited.safetensors", family), message)


@pytest.mark.parametrize("family", list(NVIDIA))
def test_an_exported_state_dict_still_loads(tmp_path, converted, family):
    generator = build_from_file(converted[family], family)
    save_file(generator.net.state_dict(), tmp_path / "export.safetensors")
    again = build_from_file(tmp_path / "export.safetensors", family)
    z = generator.latents([0, 1])
    assert torch.equal(again.synthesize(z, 0.5), generator.synthesize(z, 0.5))


# ---- checkpoints sized by their tensors' shapes ---------------------------------------------

def _stylegan2() -> dict:
    return torch.load(DATA / "stylegan2_tiny_g_ema.pt", weights_only=True)


def _proggan() -> dict:
    return torch.load(DATA / "proggan_tiny.pth", weights_only=True)


def _g_ema(**changes) -> dict:
    checkpoint = _stylegan2()
    checkpoint["g_ema"].update(changes)
    return checkpoint


def _without_g_ema(key: str) -> dict:
    checkpoint = _stylegan2()
    del checkpoint["g_ema"][key]
    return checkpoint


def _stride0(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor of `tensor`'s shape whose every number is one stored number."""
    return torch.zeros(1).expand(tensor.shape)


def _proggan_with(**changes) -> dict:
    return {**_proggan(), **changes}


def _dcgan(channels: list[int], **changes) -> dict:
    state = {}
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
        state[f"main.{3 * i}.weight"] = torch.zeros(c_in, c_out, 4, 4)
        if i < len(channels) - 2:
            state.update({f"main.{3 * i + 1}.{k}": torch.zeros(c_out) for k in
                          ("weight", "bias", "running_mean", "running_var")})
            state[f"main.{3 * i + 1}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    return {**state, **changes}


SHAPES = "must be a whole number|numbers; the limit is|inconsistent shapes|does not match"
SHAPE_LIES = {
    "sg2 conv1 [1,6144,6144,0,0]": ("stylegan2", lambda: _g_ema(
        **{"conv1.conv.weight": torch.zeros(1, 6144, 6144, 0, 0)}), NUMBER),
    "sg2 conv1 [1,4096,4096,0,0]": ("stylegan2", lambda: _g_ema(
        **{"conv1.conv.weight": torch.zeros(1, 4096, 4096, 0, 0)}), SHAPES),
    "sg2 convs.0 [1,4096,4096,0,0]": ("stylegan2", lambda: _g_ema(
        **{"convs.0.conv.weight": torch.zeros(1, 4096, 4096, 0, 0)}), SHAPES),
    "sg2 style [0,8192]": ("stylegan2", lambda: _g_ema(
        **{"style.1.weight": torch.zeros(0, 8192)}), NUMBER),
    "sg2 style [0,4096]": ("stylegan2", lambda: _g_ema(
        **{"style.1.weight": torch.zeros(0, 4096)}), "latent_avg must hold"),
    "sg2 style.99": ("stylegan2", lambda: _g_ema(**{"style.99.weight": torch.zeros(0)}),
                     NUMBER),
    "sg2 style.63": ("stylegan2", lambda: _g_ema(**{"style.63.weight": torch.zeros(0)}),
                     "missing ['style."),
    "sg2 convs.999": ("stylegan2", lambda: _g_ema(**{"convs.999.conv.weight": torch.zeros(0)}),
                      "upsampling steps"),
    "sg2 convs.10^12": ("stylegan2", lambda: _g_ema(
        **{"convs.1000000000000.conv.weight": torch.zeros(0)}), "does not match"),
    "sg2 1-D style": ("stylegan2", lambda: _g_ema(**{"style.1.weight": torch.zeros(32)}),
                      "lacks the tensor 'style.1.weight'"),
    "sg2 style not a tensor": ("stylegan2", lambda: _g_ema(**{"style.1.weight": 5}),
                               "lacks the tensor"),
    "sg2 a buffer not a tensor": ("stylegan2", lambda: _g_ema(**{"noises.noise_0": [1.0]}),
                                  "not a plain tensor"),
    "sg2 stride-0 weight": ("stylegan2", lambda: _g_ema(
        **{"convs.6.conv.weight": _stride0(_stylegan2()["g_ema"]["convs.6.conv.weight"])}),
        "repeat numbers"),
    "sg2 stride-0 latent_avg": ("stylegan2", lambda: {**_stylegan2(),
                                                      "latent_avg": torch.zeros(1).expand(32)},
                                "repeat numbers"),
    "sg2 latent_avg 2^20": ("stylegan2", lambda: {**_stylegan2(),
                                                  "latent_avg": torch.zeros(2**20)},
                            "latent_avg must hold"),
    "sg2 no convs.0 (odd)": ("stylegan2", lambda: _without_g_ema("convs.7.conv.weight"),
                             "come in pairs"),
    "sg2 an int key": ("stylegan2", lambda: {**_stylegan2(), "g_ema": {
        **_stylegan2()["g_ema"], 7: torch.zeros(1)}}, "unexpected ['7']"),
    "sg2 complex weight": ("stylegan2", lambda: _g_ema(**{"input.input": torch.zeros(
        1, 32, 4, 4, dtype=torch.complex64)}), "not a plain tensor"),
    "pg layer1 [6144,6144,0,0]": ("proggan", lambda: _proggan_with(
        **{"layer1.conv.weight": torch.zeros(6144, 6144, 0, 0)}), NUMBER),
    "pg layer1 [4096,4096,0,0]": ("proggan", lambda: _proggan_with(
        **{"layer1.conv.weight": torch.zeros(4096, 4096, 0, 0)}), SHAPES),
    "pg layer3 [4096,0,0,0]": ("proggan", lambda: _proggan_with(
        **{"layer3.conv.weight": torch.zeros(4096, 0, 0, 0)}), SHAPES),
    "pg layer99": ("proggan", lambda: _proggan_with(**{"layer99.conv.weight": torch.zeros(0)}),
                   "come in pairs"),
    "pg layer200": ("proggan", lambda: _proggan_with(**{"layer200.conv.weight": torch.zeros(0)}),
                    "upsampling steps"),
    "pg layer1 1-D": ("proggan", lambda: _proggan_with(**{"layer1.conv.weight": torch.zeros(4)}),
                      "lacks the tensor"),
    "pg stride-0": ("proggan", lambda: _proggan_with(
        **{"layer6.conv.weight": _stride0(_proggan()["layer6.conv.weight"])}), "repeat numbers"),
    "pg zero-size bias": ("proggan", lambda: _proggan_with(**{"layer2.wscale.b": torch.zeros(0)}),
                          "inconsistent shapes"),
    "dc no convolution": ("dcgan", lambda: {"main.0.weight": torch.zeros(3, 3)},
                          "no transposed convolution"),
    "dc [6144,6144,0,0]": ("dcgan", lambda: {"main.0.weight": torch.zeros(6144, 6144, 0, 0)},
                           NUMBER),
    "dc [4096,4096,0,0]": ("dcgan", lambda: {"main.0.weight": torch.zeros(4096, 4096, 0, 0)},
                           SHAPES),
    "dc 30 convolutions": ("dcgan", lambda: {f"main.{3 * i}.weight": torch.zeros(1, 1, 0, 0)
                                             for i in range(30)}, "upsampling steps"),
    "dc misplaced convolution": ("dcgan", lambda: {"main.1.weight": torch.zeros(8, 3, 4, 4)},
                                 "does not match"),
    "dc stride-0": ("dcgan", lambda: _dcgan([8, 16, 3], **{
        "main.3.weight": torch.zeros(1).expand(16, 3, 4, 4)}), "repeat numbers"),
    "dc zero channels": ("dcgan", lambda: _dcgan([8, 0, 3]), NUMBER),
}


@pytest.mark.parametrize("name", list(SHAPE_LIES))
def test_checkpoint_shape_lies_are_refused(tmp_path, name):
    family, make, message = SHAPE_LIES[name]
    path = tmp_path / "lie.pt"
    torch.save(make(), path)
    cheap_refusal(lambda: build_from_file(path, family), message)


@pytest.mark.parametrize(("family", "state"), [
    ("stylegan2", lambda: {"conv1.conv.weight": torch.zeros(1, 4096, 4096, 0, 0),
                           "style.1.weight": torch.zeros(0, 4096)}),
    ("proggan", lambda: {"layer1.conv.weight": torch.zeros(4096, 4096, 0, 0),
                         "layer2.conv.weight": torch.zeros(0, 4096, 0, 0)}),
    ("dcgan", lambda: {"main.0.weight": torch.zeros(4096, 4096, 0, 0)}),
], ids=["stylegan2", "proggan", "dcgan"])
def test_zero_size_tensors_in_safetensors_are_refused(tmp_path, family, state):
    """The issue's ~1 KB published weights: zero-size tensors that claim a huge network."""
    path = tmp_path / "weights.safetensors"
    save_file(state(), path)
    assert path.stat().st_size < 1000
    cheap_refusal(lambda: build_from_file(path, family), SHAPES)


def test_a_well_formed_dcgan_checkpoint_still_loads(tmp_path):
    torch.save(_dcgan([8, 16, 3]), tmp_path / "dcgan.pt")
    generator = build_from_file(tmp_path / "dcgan.pt", "dcgan")
    assert generator.image_size == (8, 8) and generator.z_dim == 8


# ---- safetensors headers ----------------------------------------------------------------------

def test_a_safetensors_of_too_many_tensors_is_refused_from_its_header(tmp_path):
    path = tmp_path / "many.safetensors"
    save_file({f"t{i}": torch.zeros(0) for i in range(MAX_CHECKPOINT_TENSORS + 1)}, path)
    cheap_refusal(lambda: build_from_file(path, "proggan"), "tensors; the limit is")


def test_a_safetensors_header_over_the_limit_is_refused_unread(tmp_path):
    path = tmp_path / "big-header.safetensors"
    path.write_bytes((2**40).to_bytes(8, "little") + b"{}")
    cheap_refusal(lambda: build_from_file(path, "proggan"), "header is")


@pytest.mark.parametrize("opcodes", [pickle.EMPTY_DICT, pickle.EMPTY_LIST])
def test_a_torch_zip_whose_pickle_would_swell_is_refused_unread(tmp_path, opcodes):
    """2 MB of one-byte opcodes that each make an empty container: ~160 MB once unpickled."""
    source, path = tmp_path / "small.pt", tmp_path / "swell.pt"
    torch.save({"a": torch.zeros(4)}, source)
    body = pickle.PROTO + b"\x02" + pickle.EMPTY_LIST + pickle.MARK
    body += opcodes * (2 * MAX_TORCH_PICKLE_BYTES) + pickle.APPENDS + pickle.STOP
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as swollen:
        for info in original.infolist():
            data = original.read(info.filename)
            swollen.writestr(info, body if info.filename.endswith("data.pkl") else data)
    cheap_refusal(lambda: build_from_file(path, "stylegan2"), "object pickle is")


# ---- the command line: exit status 2, one line, nothing written, little memory ----------------

@pytest.mark.parametrize(("name", "argv", "message"), [
    ("sample z_dim text", ["sample", "--model", "m", "--samples", "0", "--out", "g.png"],
     NUMBER),
    ("convert kwargs 2^30", ["convert", "net.pkl", "--out", "conv"], NUMBER),
])
def test_the_command_line_refuses_with_status_2(tmp_path, monkeypatch, capsys, converted, name,
                                                argv, message):
    from nvidia_writer import Shape, SnapshotWriter

    from zoo.nvidia_pickle import load_snapshot

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    _hostile_folder(converted["stylegan3"], work / "m", ("z_dim",), "32")
    nets = load_snapshot(DATA / "sg2ada_tiny.pkl")
    nets["G_ema"].init_kwargs["w_dim"] = 2**30
    (work / "net.pkl").write_bytes(SnapshotWriter(Shape()).snapshot(nets))
    refused(argv, message, capsys, work)


def test_refusals_leave_the_real_models_loadable(converted):
    """After every refusal above, the tiny fixtures still build and draw finite images."""
    for family in NVIDIA:
        generator = build_from_file(converted[family], family)
        assert torch.isfinite(generator.synthesize(generator.latents([0]), 0.5)).all()
    proggan = build_from_file(DATA / "proggan_tiny.pth", "proggan")
    assert math.isfinite(float(proggan.synthesize(proggan.latents([0])).abs().sum()))
