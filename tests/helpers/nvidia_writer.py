"""Write NVIDIA-style network snapshots for tests: every allowed shape, and malicious variants.

The opcodes are those NVIDIA's `persistence` module and `torch.save` produce, written from the
data our reader returns, so each file shape (protocol 3 or 4, dict or OrderedDict state,
`numpy.core` or `numpy._core`, with or without D) can be made from one fixture. `Ref` names
any global (also an unsafe one) without importing it.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zoo.nvidia_pickle import LEGACY_MAGIC, LEGACY_PROTOCOL, PersistentNet


@dataclass(frozen=True)
class Ref:
    """A global reference `module.name`, written as GLOBAL / STACK_GLOBAL without importing."""

    module: str
    name: str

    def __call__(self, *args: Any) -> Any:  # the pickler wants a callable; never called here
        raise TypeError(f"{self.module}.{self.name} is only a name")


@dataclass(frozen=True)
class Call:
    """`func(*args)` in the pickle (a REDUCE), optionally followed by BUILD with `state`."""

    func: Any
    args: tuple
    state: Any = None
    items: tuple = ()


class _Writer(pickle._Pickler):  # the Python pickler, so globals can be written by hand
    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file: io.BytesIO, protocol: int, persistent: dict | None = None) -> None:
        super().__init__(file, protocol)
        self.persistent = persistent or {}

    def persistent_id(self, obj: Any) -> Any:
        return self.persistent.get(id(obj))

    def _save_ref(self, ref: Ref) -> None:
        if self.proto >= 4:
            self.save(ref.module)
            self.save(ref.name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{ref.module}\n{ref.name}\n".encode())
        self.memoize(ref)

    def _save_call(self, call: Call) -> None:
        items = iter(call.items) if call.items else None
        self.save_reduce(call.func, call.args, state=call.state, dictitems=items, obj=call)

    dispatch[Ref] = _save_ref
    dispatch[Call] = _save_call


def dumps(obj: Any, protocol: int, persistent: dict | None = None) -> bytes:
    stream = io.BytesIO()
    _Writer(stream, protocol, persistent).dump(obj)
    return stream.getvalue()


def storage_blob(flat: torch.Tensor, storage_ref: Ref = Ref("torch", "FloatStorage")) -> bytes:
    """A legacy `torch.save` stream of one float32 storage, as NVIDIA's pickles embed them."""
    key = "94505667684384"
    marker = object()
    record = ("storage", storage_ref, key, "cpu", flat.numel(), None)
    sys_info = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    parts = [dumps(v, 2) for v in (LEGACY_MAGIC, LEGACY_PROTOCOL, sys_info)]
    parts.append(dumps(marker, 2, {id(marker): record}))
    parts.append(dumps([key], 2))
    parts.append(flat.numel().to_bytes(8, "little") + flat.numpy().astype("<f4").tobytes())
    return b"".join(parts)


@dataclass
class Shape:
    """How to write a snapshot."""

    protocol: int = 4
    ordered: bool = False
    numpy_core: str = "numpy.core"
    keys: tuple[str, ...] = ("training_set_kwargs", "G", "D", "G_ema", "augment_pipe")
    module_src: str = "# source omitted from this test fixture"


class SnapshotWriter:
    """Turns `PersistentNet` trees back into the pickled form of a shape."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape

    def tensor(self, t: torch.Tensor, parameter: bool) -> Call:
        flat = t.detach().contiguous().reshape(-1).float()
        storage = Call(Ref("torch.storage", "_load_from_bytes"), (storage_blob(flat),))
        stride = tuple(t.contiguous().stride())
        rebuilt = Call(
            Ref("torch._utils", "_rebuild_tensor_v2"),
            (storage, 0, tuple(t.shape), stride, False, OrderedDict()),
        )
        if parameter:
            return Call(Ref("torch._utils", "_rebuild_parameter"), (rebuilt, True, OrderedDict()))
        return rebuilt

    def dtype(self, code: str) -> Call:
        return Call(Ref("numpy", "dtype"), (code, False, True),
                    (3, "<" if code != "b1" else "|", None, None, None, -1, -1, 0))

    def value(self, v: Any) -> Any:
        core = f"{self.shape.numpy_core}.multiarray"
        if isinstance(v, np.ndarray):
            return Call(
                Ref(core, "_reconstruct"), (Ref("numpy", "ndarray"), (0,), b"b"),
                (1, v.shape, self.dtype(v.dtype.str[1:]), False, v.tobytes()),
            )
        if isinstance(v, float):
            return Call(Ref(core, "scalar"), (self.dtype("f8"), np.float64(v).tobytes()))
        if isinstance(v, dict):
            items = tuple((k, self.value(x)) for k, x in v.items())
            return Call(Ref("dnnlib.util", "EasyDict"), (), None, items)
        if isinstance(v, PersistentNet):
            return self.network(v)
        return v

    def container(self) -> Any:
        return OrderedDict if self.shape.ordered else dict

    def network(self, net: PersistentNet) -> Call:
        box = self.container()
        state: dict[str, Any] = {"training": False}
        state["_parameters"] = box(
            (k, None if v is None else self.tensor(v, True)) for k, v in net.parameters.items()
        )
        state["_buffers"] = box(
            (k, None if v is None else self.tensor(v, False)) for k, v in net.buffers.items()
        )
        state["_non_persistent_buffers_set"] = set()
        state["_forward_hooks"] = OrderedDict()
        state["_modules"] = box((k, self.network(c)) for k, c in net.children.items())
        state.update({k: self.value(v) for k, v in net.attributes.items() if k != "training"})
        state["_init_args"] = net.init_args
        state["_init_kwargs"] = {k: self.value(v) for k, v in net.init_kwargs.items()}
        meta = {"type": "class", "version": 6, "module_src": self.shape.module_src,
                "class_name": net.class_name, "state": state}
        return Call(Ref("torch_utils.persistence", "_reconstruct_persistent_obj"), (meta,))

    def snapshot(self, nets: dict[str, Any], extra: dict[str, Any] | None = None) -> bytes:
        top = {k: self.value(nets.get(k)) for k in self.shape.keys}
        top.update(extra or {})
        return dumps(top, self.shape.protocol)
