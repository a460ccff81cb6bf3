"""NVIDIA network pickles built to exhaust the reader: bombs, cycles, deep chains, lying views.

Every file here is a few bytes to a few megabytes; each must be refused with one line (never a
traceback or a hang), raising the process's peak memory by at most REFUSAL_BUDGET_MB, and
nothing in it is ever run. Files are written with the opcodes NVIDIA's pickles use: through
`nvidia_writer` where the writer can express the lie, else as raw opcodes (`Program`).
"""

from __future__ import annotations

import pickle
import pickletools
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from nvidia_writer import Call, Ref, Shape, SnapshotWriter, dumps, storage_blob
from refusals import cheap_refusal, refused

from rewriting.limits import MAX_MODULE_DEPTH, MAX_PICKLE_MODULES, MAX_PICKLE_OPS
from zoo.loader import build_from_file
from zoo.nvidia_pickle import load_snapshot, read_network_pickle

DATA = Path(__file__).parents[1] / "data"
RECONSTRUCT = ("torch_utils.persistence", "_reconstruct_persistent_obj")
REBUILD = Ref("torch._utils", "_rebuild_tensor_v2")
NUMBER = "must be a whole number|must be a number|must be a power"


class Program:
    """A protocol-4 pickle written opcode by opcode (the memo is indexed in MEMOIZE order)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = [pickle.PROTO + b"\x04"]
        self.memo = 0

    def text(self, value: str) -> Program:
        data = value.encode()
        self.parts.append(pickle.SHORT_BINUNICODE + bytes([len(data)]) + data)
        return self

    def op(self, *codes: bytes) -> Program:
        self.parts.extend(codes)
        return self

    def glob(self, module: str, name: str) -> Program:
        return self.text(module).text(name).op(pickle.STACK_GLOBAL)

    def get(self, index: int) -> Program:
        return self.op(pickle.LONG_BINGET + struct.pack("<I", index))

    def keep(self) -> int:
        """MEMOIZE the top of the stack; its memo index."""
        self.parts.append(pickle.MEMOIZE)
        self.memo += 1
        return self.memo - 1

    def module(self, children: dict[str, int]) -> Program:
        """Push a persistent module (class 'M') whose `_modules` are the memoized `children`;
        memo 0 must hold `_reconstruct_persistent_obj`."""
        self.get(0).op(pickle.EMPTY_DICT, pickle.MARK)
        self.text("type").text("class").text("class_name").text("M").text("state")
        self.op(pickle.EMPTY_DICT, pickle.MARK).text("_modules").op(pickle.EMPTY_DICT)
        if children:
            self.op(pickle.MARK)
            for name, index in children.items():
                self.text(name).get(index)
            self.op(pickle.SETITEMS)
        return self.op(pickle.SETITEMS, pickle.SETITEMS, pickle.TUPLE1, pickle.REDUCE)

    def start_modules(self) -> Program:
        self.glob(*RECONSTRUCT).keep()
        return self

    def bytes(self) -> bytes:
        return b"".join(self.parts) + pickle.STOP


def _chain(depth: int) -> bytes:
    """Modules nested `depth` deep, each the only child of the next."""
    program = Program().start_modules()
    child = program.module({}).keep()
    for _ in range(depth - 1):
        child = program.module({"c": child}).keep()
    return program.bytes()


def _self_child() -> bytes:
    """A module that BUILD makes its own child (NVIDIA's loader would then recurse forever)."""
    program = Program().start_modules()
    net = program.module({}).keep()
    program.op(pickle.EMPTY_DICT, pickle.MARK).text("children").op(pickle.EMPTY_DICT, pickle.MARK)
    program.text("me").get(net).op(pickle.SETITEMS, pickle.SETITEMS, pickle.BUILD)
    return program.bytes()


def _module_dag(levels: int) -> bytes:
    """2**levels paths to one leaf: each module has two children that are the same module."""
    program = Program().start_modules()
    child = program.module({}).keep()
    for _ in range(levels):
        child = program.module({"a": child, "b": child}).keep()
    return program.bytes()


def _shared_child() -> bytes:
    """Two modules that both claim one submodule."""
    program = Program().start_modules()
    leaf = program.module({}).keep()
    first = program.module({"c": leaf}).keep()
    second = program.module({"c": leaf}).keep()
    program.op(pickle.EMPTY_DICT, pickle.MARK).text("G").get(first).text("D").get(second)
    return program.op(pickle.SETITEMS).bytes()


def _many_modules(count: int) -> bytes:
    """`count` leaf modules made from one memoized description, each dropped at once."""
    program = Program().start_modules()
    program.op(pickle.EMPTY_DICT, pickle.MARK).text("type").text("class").text("class_name")
    meta = program.text("M").text("state").op(pickle.EMPTY_DICT, pickle.SETITEMS).keep()
    for _ in range(count):
        program.get(0).get(meta).op(pickle.TUPLE1, pickle.REDUCE, pickle.POP)
    return program.op(pickle.NONE).bytes()


def _tuple_dag(levels: int) -> Program:
    """Push a tuple nested `levels` deep through the memo (2**levels leaves; hashing it or
    printing it would never end)."""
    program = Program().op(pickle.NONE)
    node = program.keep()
    for _ in range(levels):
        node = program.get(node).get(node).op(pickle.TUPLE2).keep()
    return program


def _hash_bomb(container: str) -> bytes:
    program = _tuple_dag(200)
    top = program.memo - 1
    if container == "dict key":
        program.op(pickle.EMPTY_DICT).get(top).op(pickle.NONE, pickle.SETITEM)
    elif container == "dict literal":
        program.op(pickle.MARK).get(top).op(pickle.NONE, pickle.DICT)
    elif container == "set item":
        program.op(pickle.EMPTY_SET, pickle.MARK).get(top).op(pickle.ADDITEMS)
    elif container == "frozenset":
        program.op(pickle.MARK).get(top).op(pickle.FROZENSET)
    else:  # builtins.set called on a list, as protocols 2 and 3 write sets
        program.glob("builtins", "set").op(pickle.EMPTY_LIST).get(top)
        program.op(pickle.APPEND, pickle.TUPLE1, pickle.REDUCE)
    return program.bytes()


def _tuple_dag_as(use: str) -> bytes:
    """The tuple DAG where the reader would print or parse it."""
    program = _tuple_dag(200)
    top = program.memo - 1
    if use == "numpy type code":
        program.glob("numpy", "dtype").get(top).op(pickle.TUPLE1, pickle.REDUCE)
    else:  # a persistent id
        program.get(top).op(pickle.BINPERSID)
    return program.bytes()


RAW = {
    "3,000-deep _modules chain": (lambda: _chain(3000), "nested more than"),
    f"{MAX_MODULE_DEPTH + 1}-deep _modules chain": (lambda: _chain(MAX_MODULE_DEPTH + 1),
                                                     "nested more than"),
    "BUILD makes a module its own child": (_self_child, "sets the state of a PersistentNet"),
    "a 2^60-path module DAG": (lambda: _module_dag(60), "a submodule twice"),
    "two modules claim one child": (_shared_child, "a submodule twice"),
    f"{MAX_PICKLE_MODULES + 1} modules": (lambda: _many_modules(MAX_PICKLE_MODULES + 1),
                                           "more modules"),
    "dict key hash bomb": (lambda: _hash_bomb("dict key"), "not a plain value"),
    "dict literal hash bomb": (lambda: _hash_bomb("dict literal"), "not a plain value"),
    "set item hash bomb": (lambda: _hash_bomb("set item"), "not a plain value"),
    "frozenset hash bomb": (lambda: _hash_bomb("frozenset"), "not a plain value"),
    "builtins.set hash bomb": (lambda: _hash_bomb("set call"), "plain values"),
    "numpy type code DAG": (lambda: _tuple_dag_as("numpy type code"), "not short text"),
    "persistent id DAG": (lambda: _tuple_dag_as("persistent id"), "unexpected persistent id"),
    "1.2M operations": (lambda: Program().op((pickle.EMPTY_DICT + pickle.POP) * 600_000,
                                             pickle.NONE).bytes(), "more pickle operations"),
    "a memo of 600,000 dicts": (lambda: Program().op((pickle.EMPTY_DICT + pickle.MEMOIZE)
                                                     * 600_000, pickle.NONE).bytes(),
                                "more pickle operations"),
    "BUILD on a global class": (lambda: Program().glob("numpy", "dtype").op(
        pickle.NONE, pickle.EMPTY_DICT, pickle.MARK).text("resolve").op(
        pickle.NONE, pickle.SETITEMS, pickle.TUPLE2, pickle.BUILD).bytes(), "sets the state"),
    "BUILD on an OrderedDict": (lambda: Program().glob("collections", "OrderedDict").op(
        pickle.EMPTY_TUPLE, pickle.REDUCE, pickle.NONE, pickle.BUILD).bytes(), "sets the state"),
    "NEWOBJ of a function": (lambda: Program().glob("builtins", "set").op(
        pickle.EMPTY_TUPLE, pickle.NEWOBJ).bytes(), "another class"),
    "SETITEM into a list": (lambda: Program().op(pickle.EMPTY_LIST, pickle.NONE, pickle.NONE,
                                                 pickle.SETITEM).bytes(), "non-dict"),
    "SETITEMS into a set": (lambda: Program().op(pickle.EMPTY_SET, pickle.MARK, pickle.NONE,
                                                 pickle.NONE, pickle.SETITEMS).bytes(),
                            "non-dict"),
    "ADDITEMS into a dict": (lambda: Program().op(pickle.EMPTY_DICT, pickle.MARK, pickle.NONE,
                                                  pickle.ADDITEMS).bytes(), "non-set"),
    "truncated BININT": (lambda: b"\x80\x04J\x01\x02", "corrupt"),
    "unknown opcode": (lambda: b"\x80\x04\xff.", "corrupt"),
    "empty file": (lambda: b"", "corrupt"),
    "REDUCE with no arguments tuple": (lambda: Program().glob("builtins", "set").op(
        pickle.NONE, pickle.REDUCE).bytes(), "corrupt"),
    "stack underflow": (lambda: Program().op(pickle.SETITEM).bytes(), "corrupt"),
    "text LONG of 10,000 digits": (lambda: b"\x80\x02L" + b"9" * 10_000 + b"L\n.", "corrupt"),
}


@pytest.mark.parametrize("name", list(RAW))
def test_raw_pickle_bombs_are_refused(tmp_path, name):
    make, message = RAW[name]
    path = tmp_path / "bomb.pkl"
    path.write_bytes(make())
    cheap_refusal(lambda: load_snapshot(path), message)


def test_the_operation_limit_leaves_room_for_real_snapshots():
    data = (DATA / "sg2ada_tiny.pkl").read_bytes()
    operations = sum(1 for _ in pickletools.genops(data))
    assert operations * 20 < MAX_PICKLE_OPS  # a 1024-px snapshot has ~5x the tiny one's modules


# ---- lies written with the snapshot writer ---------------------------------------------------

@pytest.fixture(scope="module")
def sg2():
    return load_snapshot(DATA / "sg2ada_tiny.pkl")


def _storage(values: int = 1) -> Call:
    return Call(Ref("torch.storage", "_load_from_bytes"), (storage_blob(torch.zeros(values)),))


def _view(storage: Call, offset: object, size: object, stride: object) -> Call:
    return Call(REBUILD, (storage, offset, size, stride, False, OrderedDict()))


def _with_buffers(nets: dict, buffers: dict[str, object], path: Path) -> Path:
    """The snapshot with extra buffers (writer Calls) in G_ema's first synthesis block."""
    writer = SnapshotWriter(Shape())
    top = {k: writer.value(nets.get(k)) for k in writer.shape.keys}
    block = top["G_ema"].args[0]["state"]["_modules"]["synthesis"].args[0]["state"]
    block["_buffers"].update(buffers)
    path.write_bytes(dumps(top, 4))
    return path


VIEWS = {
    "six stride-0 [2^28] buffers on one number": (
        lambda: {f"bomb{i}": _view(_storage(), 0, (2**28,), (0,)) for i in range(6)},
        "repeats elements"),
    "stride 0 [4, 2^26]": (lambda: {"b": _view(_storage(4), 0, (4, 2**26), (1, 0))},
                           "repeats elements"),
    "overlapping [64, 64] strides (1, 1)": (lambda: {"b": _view(_storage(128), 0, (64, 64),
                                                                 (1, 1))}, "repeats elements"),
    "overlapping [8, 8] strides (4, 1)": (lambda: {"b": _view(_storage(64), 0, (8, 8), (4, 1))},
                                          "repeats elements"),
    "[2^28] on 16 numbers": (lambda: {"b": _view(_storage(16), 0, (2**28,), (1,))},
                             "outside its storage"),
    "offset past the end": (lambda: {"b": _view(_storage(16), 16, (1,), (1,))},
                            "outside its storage"),
    "offset 2^70": (lambda: {"b": _view(_storage(16), 2**70, (1,), (1,))}, "outside"),
    "offset inf": (lambda: {"b": _view(_storage(16), float("inf"), (4,), (1,))},
                   "not 8 or fewer whole numbers"),
    "offset -1": (lambda: {"b": _view(_storage(16), -1, (4,), (1,))}, "whole numbers"),
    "offset text": (lambda: {"b": _view(_storage(16), "0", (4,), (1,))}, "whole numbers"),
    "offset true": (lambda: {"b": _view(_storage(16), True, (4,), (1,))}, "whole numbers"),
    "shape inf": (lambda: {"b": _view(_storage(16), 0, (float("inf"),), (1,))},
                  "whole numbers"),
    "shape nan": (lambda: {"b": _view(_storage(16), 0, (float("nan"),), (1,))},
                  "whole numbers"),
    "shape -4": (lambda: {"b": _view(_storage(16), 0, (-4,), (1,))}, "whole numbers"),
    "shape 4.0": (lambda: {"b": _view(_storage(16), 0, (4.0,), (1,))}, "whole numbers"),
    "shape a dict": (lambda: {"b": _view(_storage(16), 0, {"a": 1}, (1,))}, "whole numbers"),
    "stride -1": (lambda: {"b": _view(_storage(16), 0, (4,), (-1,))}, "whole numbers"),
    "stride text": (lambda: {"b": _view(_storage(16), 0, (4,), ("1",))}, "whole numbers"),
    "shape and strides of different lengths": (
        lambda: {"b": _view(_storage(16), 0, (4, 4), (4,))}, "whole numbers"),
    "20 dimensions": (lambda: {"b": _view(_storage(16), 0, (1,) * 20, (1,) * 20)},
                      "whole numbers"),
    "BUILD on a tensor (a stride-0 set_)": (lambda: {"b": Call(REBUILD, (
        _storage(16), 0, (4,), (1,), False, OrderedDict()), (None, 0, (2**28,), (0,)))},
        "sets the state of a Tensor"),
    "a view of no storage": (lambda: {"b": _view(None, 0, (4,), (1,))},
                             "other than a storage"),
    "one 1 MB storage copied 300 times": (
        lambda: (lambda s: {f"b{i}": _view(s, 0, (2**18,), (1,)) for i in range(300)})(
            _storage(2**18)), "more tensor bytes"),
    "a storage of the wrong size": (lambda: {"b": Call(Ref("torch.storage", "_load_from_bytes"), (
        storage_blob(torch.zeros(4))[:-8],))}, "truncated"),
}


@pytest.mark.parametrize("name", list(VIEWS))
def test_lying_tensor_views_are_refused(tmp_path, sg2, name):
    make, message = VIEWS[name]
    path = _with_buffers(sg2, make(), tmp_path / "views.pkl")
    cheap_refusal(lambda: read_network_pickle(path), message)


def _array(shape: object, data: bytes, code: str = "f4") -> Call:
    dtype = Call(Ref("numpy", "dtype"), (code, False, True),
                 (3, "<", None, None, None, -1, -1, 0))
    return Call(Ref("numpy.core.multiarray", "_reconstruct"),
                (Ref("numpy", "ndarray"), (0,), b"b"), (1, shape, dtype, False, data))


def _attributes(nets: dict, attributes: dict[str, object], path: Path) -> Path:
    writer = SnapshotWriter(Shape())
    top = {k: writer.value(nets.get(k)) for k in writer.shape.keys}
    top["G_ema"].args[0]["state"].update(attributes)
    path.write_bytes(dumps(top, 4))
    return path


BLOB = b"\0" * 2**20
ARRAYS = {
    "array shape inf": (lambda: {"a": _array((float("inf"),), b"\0" * 4)}, "not whole numbers"),
    "array shape -1": (lambda: {"a": _array((-1,), b"\0" * 4)}, "not whole numbers"),
    "array shape text": (lambda: {"a": _array(("4",), b"\0" * 16)}, "not whole numbers"),
    "array shape larger than its bytes": (lambda: {"a": _array((2**30,), b"\0" * 4)},
                                          "malformed numpy array"),
    "array of strings": (lambda: {"a": _array((1,), b"\0" * 4, "U1")}, "not numeric"),
    "array of objects": (lambda: {"a": _array((1,), b"\0" * 8, "O")}, "not numeric"),
    "array type code 10 KB": (lambda: {"a": _array((1,), b"\0" * 4, "f" * 10_000)},
                              "not short text"),
    "one 1 MB blob in 300 arrays": (lambda: {f"a{i}": _array((2**18,), BLOB) for i in range(300)},
                                    "more tensor bytes"),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_lying_numpy_arrays_are_refused(tmp_path, sg2, name):
    make, message = ARRAYS[name]
    path = _attributes(sg2, make(), tmp_path / "arrays.pkl")
    cheap_refusal(lambda: read_network_pickle(path), message)


def _laughs(levels: int, width: int) -> list:
    """A list whose expansion has width**levels leaves, pickled in a few hundred bytes."""
    value: list = [0] * width
    for _ in range(levels - 1):
        value = [value] * width
    return value


def _deep(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


#: Hostile G_ema constructor kwargs, and the message each gets (reading or building).
KWARGS = {
    "billion laughs (10^10 values)": ({"laughs": _laughs(5, 100)},
                                      "more constructor kwargs values"),
    "billion laughs in a dict": ({"laughs": {"a": _laughs(4, 100)}}, "more constructor kwargs"),
    "kwargs nested 20 deep": ({"deep": _deep(20)}, "nested more than"),
    "z_dim text": ({"z_dim": "32"}, NUMBER),
    "z_dim a set": ({"z_dim": {32}}, NUMBER),
    "w_dim negative": ({"w_dim": -32}, NUMBER),
    "w_dim zero": ({"w_dim": 0}, NUMBER),
    "w_dim 2^30": ({"w_dim": 2**30}, NUMBER),
    "z_dim 8192 and w_dim 8192": ({"z_dim": 8192, "w_dim": 8192}, NUMBER),
    "img_resolution 2^30": ({"img_resolution": 2**30}, NUMBER),
    "img_resolution a 201-bit number": ({"img_resolution": 2**200}, "201-bit number"),
    "img_resolution inf": ({"img_resolution": float("inf")}, NUMBER),
    "conv_clamp nan": ({"synthesis_kwargs": {"channel_base": 1024, "channel_max": 64,
                                             "conv_clamp": float("nan")}}, NUMBER),
    "conv_clamp -inf": ({"synthesis_kwargs": {"channel_base": 1024, "channel_max": 64,
                                              "conv_clamp": float("-inf")}}, NUMBER),
    "channel_max a set": ({"synthesis_kwargs": {"channel_base": 1024, "channel_max": {64}}},
                          NUMBER),
    "mapping layers None": ({"mapping_kwargs": {"num_layers": None}}, NUMBER),
    "a kwarg that is a tensor": ({"c_dim": SnapshotWriter(Shape()).tensor(torch.zeros(1), False)},
                                 NUMBER),
    "a kwarg that is a module": ({"c_dim": "MODULE"}, NUMBER),
}


@pytest.mark.parametrize("name", list(KWARGS))
def test_hostile_kwargs_in_a_pickle_are_refused(tmp_path, sg2, name):
    changes, message = KWARGS[name]
    g_ema = sg2["G_ema"]
    kwargs = dict(g_ema.init_kwargs)
    if changes.get("c_dim") == "MODULE":
        changes = {"c_dim": sg2["D"]}
    g_ema.init_kwargs = {**kwargs, **changes}
    try:
        path = tmp_path / "kwargs.pkl"
        path.write_bytes(SnapshotWriter(Shape()).snapshot(sg2))
    finally:
        g_ema.init_kwargs = kwargs
    cheap_refusal(lambda: build_from_file(path, "stylegan2-ada"), message)


def test_a_bomb_in_a_network_other_than_the_generator_is_refused_too(tmp_path, sg2):
    d = sg2["D"]
    kwargs = d.init_kwargs
    d.init_kwargs = {**kwargs, "laughs": _laughs(5, 100)}
    try:
        path = tmp_path / "d.pkl"
        path.write_bytes(SnapshotWriter(Shape()).snapshot(sg2))
    finally:
        d.init_kwargs = kwargs
    cheap_refusal(lambda: load_snapshot(path), "more constructor kwargs values")


def test_hostile_pickles_are_refused_by_the_command_line(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "bomb.pkl").write_bytes(_chain(3000))
    refused(["sample", "--model", "bomb.pkl", "--samples", "0", "--out", "g.png"],
            "nested more than", capsys, work)
    refused(["convert", "bomb.pkl", "--out", "conv"], "nested more than", capsys, work)


def test_the_real_snapshots_still_read_identically():
    for stem in ("sg2ada_tiny", "sg3_tiny_t"):
        checkpoint = read_network_pickle(DATA / f"{stem}.pkl")
        assert checkpoint["nvidia_state"] and all(
            isinstance(t, torch.Tensor) and t.is_contiguous() and np.isfinite(t.numpy()).all()
            for t in checkpoint["nvidia_state"].values()
        )
