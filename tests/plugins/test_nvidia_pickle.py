"""NVIDIA network pickles are read as data: every allowed file shape loads, nothing else does."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import pytest
import torch
from nvidia_writer import Call, Ref, Shape, SnapshotWriter, dumps, storage_blob

from rewriting.errors import RewritingError
from zoo.nvidia_pickle import (
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    PersistentNet,
    load_snapshot,
    read_network_pickle,
)

DATA = Path(__file__).parents[1] / "data"
FIXTURES = ["sg2ada_tiny", "sg3_tiny_t"]
SHAPES = {
    "protocol4": Shape(),
    "protocol3": Shape(protocol=3),
    "ordereddict": Shape(ordered=True),
    "numpy2": Shape(numpy_core="numpy._core"),
    "no-D-no-augment": Shape(keys=("G", "G_ema", "training_set_kwargs")),
    "only-G_ema": Shape(protocol=3, ordered=True, keys=("G_ema",)),
}


def _unwrap(value):
    """The manifest writes EasyDicts as {"__EasyDict__": {...}}; the reader gives plain dicts."""
    if isinstance(value, dict):
        inner = value.get("__EasyDict__", value)
        return {k: _unwrap(v) for k, v in inner.items()}
    return value


@pytest.fixture(scope="module")
def snapshots():
    return {name: load_snapshot(DATA / f"{name}.pkl") for name in FIXTURES}


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_tensors_and_kwargs_match_the_manifest(name, snapshots):
    manifest = json.loads((DATA / f"{name}_manifest.json").read_text())
    snapshot = snapshots[name]
    assert list(snapshot) == list(manifest["top_level"])
    g_ema = snapshot["G_ema"]
    tensors = g_ema.tensors()
    listed = {t["name"]: t for t in manifest["G_ema_tensors"] if t["shape"] is not None}
    assert set(tensors) == set(listed)
    for key, t in tensors.items():
        assert list(t.shape) == listed[key]["shape"] and t.dtype == torch.float32, key
    assert g_ema.init_kwargs == _unwrap(manifest["G_ema_init_kwargs"])
    tree = [line.split(": ")[1] for line in manifest["G_ema_module_tree"]]
    assert sorted(g_ema.classes().values()) == sorted(tree)
    assert isinstance(snapshot["D"], PersistentNet) and snapshot["D"].class_name == "Discriminator"


def _nets(snapshot: dict) -> dict:
    return {k: v for k, v in snapshot.items()}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("name", FIXTURES)
def test_every_allowed_shape_reads_the_same_generator(tmp_path, name, shape, snapshots):
    path = tmp_path / "snapshot.pkl"
    path.write_bytes(SnapshotWriter(SHAPES[shape]).snapshot(_nets(snapshots[name])))
    expected = read_network_pickle(DATA / f"{name}.pkl")
    got = read_network_pickle(path)
    assert got["nvidia_kwargs"] == expected["nvidia_kwargs"]
    assert got["nvidia_classes"] == expected["nvidia_classes"]
    assert set(got["nvidia_state"]) == set(expected["nvidia_state"])
    for key, tensor in expected["nvidia_state"].items():
        assert torch.equal(got["nvidia_state"][key], tensor), key
    if SHAPES[shape].protocol == 3:
        data = path.read_bytes()
        assert data[:2] == b"\x80\x03" and b"cdnnlib.util\nEasyDict\n" in data


EVIL_MODULE = "evil_payload_module_for_tests"


def _payloads(marker: Path) -> dict[str, object]:
    touch = f"open({str(marker)!r}, 'w').write('pwned')"
    evil_blob = b"".join(
        [dumps(v, 2) for v in (LEGACY_MAGIC, LEGACY_PROTOCOL, {})]
        + [dumps(Call(Ref("posix", "system"), (f"touch {marker}",)), 2)]
    )
    return {
        "os.system": Call(Ref("os", "system"), (f"touch {marker}",)),
        "posix.system": Call(Ref("posix", "system"), (f"touch {marker}",)),
        "builtins.exec": Call(Ref("builtins", "exec"), (touch,)),
        "builtins.eval": Call(Ref("builtins", "eval"), (touch,)),
        "import_module": Call(Ref("importlib", "import_module"), (EVIL_MODULE,)),
        "module-global": Ref(EVIL_MODULE, "anything"),
        "storage-blob": Call(Ref("torch.storage", "_load_from_bytes"), (evil_blob,)),
        "storage-class": Call(
            Ref("torch.storage", "_load_from_bytes"),
            (storage_blob(torch.zeros(2), Ref("os", "system")),),
        ),
        "torch.load": Call(Ref("torch", "load"), ("x.pt",)),
    }


@pytest.fixture
def evil_module(tmp_path, monkeypatch):
    """A module on sys.path that creates a marker file if it is ever imported."""
    marker = tmp_path / "pwned"
    (tmp_path / f"{EVIL_MODULE}.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop(EVIL_MODULE, None)


@pytest.mark.parametrize("payload", list(_payloads(Path("x"))))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_malicious_references_are_refused_with_nothing_run(
    tmp_path, evil_module, shape, payload, snapshots
):
    marker = evil_module
    nets = _nets(snapshots["sg3_tiny_t"])
    g_ema = nets["G_ema"]
    # The payload sits inside the generator's state, where NVIDIA's loader would run it.
    g_ema.attributes["sneaky"] = "placeholder"
    writer = SnapshotWriter(SHAPES[shape])
    try:
        network = writer.network(g_ema)
    finally:
        del g_ema.attributes["sneaky"]
    network.args[0]["state"]["sneaky"] = _payloads(marker)[payload]
    path = tmp_path / "evil.pkl"
    path.write_bytes(dumps({"G_ema": network}, SHAPES[shape].protocol))
    with pytest.raises(RewritingError) as err:
        load_snapshot(path)
    message = str(err.value)
    assert "\n" not in message and "refusing" in message
    expected = {"os.system": "os.system", "posix.system": "posix.system",
                "builtins.exec": "builtins.exec", "builtins.eval": "builtins.eval",
                "import_module": "importlib.import_module", "module-global": EVIL_MODULE,
                "storage-blob": "posix.system", "storage-class": "os.system",
                "torch.load": "torch.load"}[payload]
    assert expected in message
    assert not marker.exists()
    assert EVIL_MODULE not in sys.modules


@pytest.mark.parametrize("payload", ["os.system", "builtins.exec", "import_module"])
def test_the_payloads_are_live_under_plain_pickle(evil_module, payload):
    """The refusal above matters: Python's own unpickler would run these payloads."""
    pickle.loads(dumps(_payloads(evil_module)[payload], 4))
    assert evil_module.exists()


@pytest.mark.parametrize("shape", ["protocol4", "protocol3"])
def test_module_src_is_never_executed(tmp_path, shape, snapshots):
    marker = tmp_path / "pwned"
    source = f"open({str(marker)!r}, 'w').write('pwned')\nimport {EVIL_MODULE}\n"
    base = SHAPES[shape]
    writer = SnapshotWriter(Shape(protocol=base.protocol, module_src=source))
    path = tmp_path / "snapshot.pkl"
    path.write_bytes(writer.snapshot(_nets(snapshots["sg2ada_tiny"])))
    checkpoint = read_network_pickle(path)
    assert checkpoint["nvidia_kwargs"]["z_dim"] == 32
    assert not marker.exists()


def test_tensorflow_era_pickles_are_named_as_such(tmp_path):
    path = tmp_path / "karras2019stylegan-ffhq-1024x1024.pkl"
    network = Call(Ref("dnnlib.tflib.network", "Network"), ())
    path.write_bytes(dumps((network, network, network), 3))
    with pytest.raises(RewritingError, match="TensorFlow-era NVIDIA pickle .* not supported yet"):
        load_snapshot(path)


def test_truncated_and_foreign_files_are_clear_errors(tmp_path):
    data = (DATA / "sg3_tiny_t.pkl").read_bytes()
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RewritingError, match="corrupt or not an NVIDIA network pickle"):
        load_snapshot(cut)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(dumps({"weights": [1, 2, 3]}, 4))
    with pytest.raises(RewritingError, match="holds no generator"):
        read_network_pickle(plain)
