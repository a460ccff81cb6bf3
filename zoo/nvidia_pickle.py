"""Read NVIDIA network pickles (StyleGAN2-ADA, StyleGAN3) as plain data, never running their code.

A snapshot (`network-snapshot-*.pkl`) pickles each network as
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, where `meta` carries the module's
source (`module_src`), the class name and the module's `__dict__`. NVIDIA's loader executes that
source; this reader instead resolves every reference the file names through an allow-list of
stand-ins that only build data: dicts, tensors and numbers. Each network comes back as a
`PersistentNet` tree (class name, constructor kwargs, parameters, buffers, children); the
embedded source is never imported, compiled or executed.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewriting.errors import RewritingError

#: The first pickles of a legacy (non-zip) `torch.save` stream.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
#: numpy dtype kinds a stored number or array may have (no objects, no strings).
NUMERIC_KINDS = "biuf"


@dataclass
class PersistentNet:
    """One network module rebuilt from its pickled state, as data only."""

    class_name: str
    init_args: tuple
    init_kwargs: dict[str, Any]
    parameters: dict[str, torch.Tensor | None]
    buffers: dict[str, torch.Tensor | None]
    children: dict[str, PersistentNet]
    attributes: dict[str, Any] = field(default_factory=dict)

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Every parameter and buffer of the tree by dotted path, like `state_dict()`."""
        found = {
            prefix + name: value
            for name, value in {**self.parameters, **self.buffers}.items()
            if value is not None
        }
        for name, child in self.children.items():
            found.update(child.tensors(f"{prefix}{name}."))
        return found

    def classes(self, prefix: str = "") -> dict[str, str]:
        """The class name of every module of the tree by dotted path ('' for the root)."""
        found = {prefix.rstrip("."): self.class_name}
        for name, child in self.children.items():
            found.update(child.classes(f"{prefix}{name}."))
        return found


def _plain(value: Any) -> Any:
    """Numbers, strings and containers as JSON-friendly Python values (numpy scalars too)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, _NDArray):
        return None if value.array is None else value.array.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _mapping(state: Mapping[str, Any], key: str, class_name: str) -> Mapping[str, Any]:
    value = state.get(key, {})
    if not isinstance(value, Mapping):
        raise RewritingError(f"network pickle: {class_name}.{key} is not a dict")
    return value


def _tensors(value: Mapping[str, Any], what: str) -> dict[str, torch.Tensor | None]:
    for name, tensor in value.items():
        if tensor is not None and not isinstance(tensor, torch.Tensor):
            raise RewritingError(f"network pickle: {what} {name!r} is not a tensor")
    return dict(value)


def _reconstruct_persistent_obj(meta: Any) -> PersistentNet:
    """Stand-in for NVIDIA's persistence hook: keep the state, ignore `module_src`."""
    if not isinstance(meta, Mapping) or meta.get("type") != "class":
        kind = meta.get("type") if isinstance(meta, Mapping) else type(meta).__name__
        raise RewritingError(f"network pickle holds a persistent {kind!r}, not a class")
    class_name, state = meta.get("class_name"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(state, Mapping):
        raise RewritingError("network pickle: a persistent object lacks its class name or state")
    children = {}
    for name, child in _mapping(state, "_modules", class_name).items():
        if child is None:
            continue
        if not isinstance(child, PersistentNet):
            raise RewritingError(
                f"network pickle: submodule {class_name}.{name} is a {type(child).__name__}, "
                "not a persistent network"
            )
        children[name] = child
    kwargs = state.get("_init_kwargs", {})
    args = state.get("_init_args", ())
    if not isinstance(kwargs, Mapping) or not isinstance(args, (tuple, list)):
        raise RewritingError(f"network pickle: {class_name} has malformed constructor arguments")
    attributes = {
        k: v.array if isinstance(v, _NDArray) else v
        for k, v in state.items()
        if not str(k).startswith("_")
    }
    return PersistentNet(
        class_name=class_name,
        init_args=tuple(_plain(args)),
        init_kwargs=_plain(kwargs),
        parameters=_tensors(_mapping(state, "_parameters", class_name), "parameter"),
        buffers=_tensors(_mapping(state, "_buffers", class_name), "buffer"),
        children=children,
        attributes=attributes,
    )


def _rebuild_tensor_v2(
    storage: torch.Tensor, offset: int, size: tuple, stride: tuple, requires_grad: bool = False,
    backward_hooks: Any = None, metadata: Any = None,
) -> torch.Tensor:
    """A tensor viewing `storage` (a flat tensor from `_load_from_bytes`), copied out."""
    if not isinstance(storage, torch.Tensor):
        raise RewritingError("network pickle: a tensor refers to something other than a storage")
    try:
        return storage.as_strided(tuple(size), tuple(stride), int(offset)).clone()
    except RuntimeError as err:
        raise RewritingError(f"network pickle: a tensor lies outside its storage ({err})") from None


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool, hooks: Any) -> torch.Tensor:
    """A parameter is kept as its plain tensor; hooks are never attached."""
    if not isinstance(data, torch.Tensor):
        raise RewritingError("network pickle: a parameter holds no tensor")
    return data


class _DType:
    """Stand-in for `numpy.dtype`: remembers the type code and byte order only."""

    def __init__(self, code: Any, align: Any = False, copy: Any = False) -> None:
        self.code = str(code)
        self.order = "="

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.order = state[1]

    def resolve(self) -> np.dtype:
        try:
            dtype = np.dtype(self.code).newbyteorder(self.order if self.order != "|" else "=")
        except TypeError as err:
            raise RewritingError(f"network pickle: unknown numpy type {self.code!r}") from err
        if dtype.kind not in NUMERIC_KINDS or dtype.itemsize == 0:
            raise RewritingError(f"network pickle: numpy type {self.code!r} is not numeric")
        return dtype


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """Stand-in for `numpy.core.multiarray.scalar`: a numeric scalar read from its bytes."""
    if not isinstance(dtype, _DType) or not isinstance(data, bytes):
        raise RewritingError("network pickle: a numpy scalar is not a plain number")
    resolved = dtype.resolve()
    if len(data) != resolved.itemsize:
        raise RewritingError("network pickle: a numpy scalar has the wrong number of bytes")
    return np.frombuffer(data, dtype=resolved)[0].item()


class _NDArray:
    """Stand-in for a pickled numpy array: becomes an array once its state arrives."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise RewritingError("network pickle: malformed numpy array")
        _version, shape, dtype, fortran, data = state
        if not isinstance(dtype, _DType) or not isinstance(data, bytes):
            raise RewritingError("network pickle: a numpy array is not numeric")
        flat = np.frombuffer(data, dtype=dtype.resolve())
        try:
            shape = tuple(int(s) for s in shape)
            self.array = flat.reshape(shape, order="F" if fortran else "C").copy()
        except (TypeError, ValueError) as err:
            raise RewritingError(f"network pickle: malformed numpy array ({err})") from None


def _numpy_reconstruct(cls: Any, shape: Any, code: Any) -> _NDArray:
    """Stand-in for `numpy.core.multiarray._reconstruct` (the array arrives by BUILD)."""
    if cls is not _NDARRAY_CLASS:
        raise RewritingError("network pickle: _reconstruct of something other than an ndarray")
    return _NDArray()


#: What `numpy.ndarray` resolves to: a marker only `_numpy_reconstruct` accepts.
_NDARRAY_CLASS = object()


class _EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict`: a plain dict (its attribute access is not needed)."""

    def __setstate__(self, state: Any) -> None:
        if state and not isinstance(state, Mapping):
            raise RewritingError("network pickle: malformed EasyDict")


def _set(items: Any = ()) -> set:
    """Stand-in for `builtins.set` (protocol 2 and 3 write sets as a call on a list)."""
    if not isinstance(items, (list, tuple)):
        raise RewritingError("network pickle: a set of something other than a list")
    return set(items)


def _ordered_dict(*args: Any) -> OrderedDict:
    if args:
        raise RewritingError("network pickle: OrderedDict called with arguments")
    return OrderedDict()


def _numpy_names(name: str, value: Any) -> dict[tuple[str, str], Any]:
    return {(f"numpy.{core}.multiarray", name): value for core in ("core", "_core")}


#: Every reference a network snapshot may name, and the data-only stand-in it resolves to.
ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch.storage", "_load_from_bytes"): None,  # set below: it needs the storage reader
    ("numpy", "dtype"): _DType,
    ("numpy", "ndarray"): _NDARRAY_CLASS,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("builtins", "set"): _set,
    ("__builtin__", "set"): _set,
    **_numpy_names("scalar", _numpy_scalar),
    **_numpy_names("_reconstruct", _numpy_reconstruct),
}

#: The storage classes a nested legacy `torch.save` blob may name, by element type.
STORAGES: dict[tuple[str, str], torch.dtype] = {("torch", "FloatStorage"): torch.float32}


class _Refusing(pickle.Unpickler):
    """An unpickler that resolves names only through `allowed` and refuses anything else."""

    def __init__(self, data: bytes | io.BytesIO, allowed: Mapping[tuple[str, str], Any],
                 where: str) -> None:
        super().__init__(io.BytesIO(data) if isinstance(data, bytes) else data)
        self.allowed = allowed
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("dnnlib.tflib"):
            raise RewritingError(
                f"refusing {self.where}: it is a TensorFlow-era NVIDIA pickle ({module}.{name}), "
                "a different format (TensorFlow variables) that is not supported yet"
            )
        if (module, name) not in self.allowed:
            raise RewritingError(
                f"refusing {self.where}: it refers to {module}.{name}, which an NVIDIA network "
                "pickle never needs (nothing from the file was run)"
            )
        return self.allowed[(module, name)]

    def persistent_load(self, pid: Any) -> Any:
        raise RewritingError(f"refusing {self.where}: unexpected persistent id {pid!r:.60}")


class _StorageReader(_Refusing):
    """The object pickle of a legacy `torch.save` blob: its one storage, by persistent id."""

    def __init__(self, stream: io.BytesIO, where: str) -> None:
        super().__init__(stream, STORAGES, where)
        self.storages: dict[str, tuple[torch.dtype, int]] = {}

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            return super().persistent_load(pid)
        _, dtype, key, _location, numel = pid[:5]
        if not isinstance(dtype, torch.dtype) or not isinstance(numel, int) or numel < 0:
            raise RewritingError(f"refusing {self.where}: malformed storage record")
        if len(pid) > 5 and pid[5] is not None:
            raise RewritingError(f"refusing {self.where}: storage views are not supported")
        self.storages[str(key)] = (dtype, numel)
        return str(key)


def _load_storage(blob: bytes, where: str) -> torch.Tensor:
    """A legacy `torch.save` blob of one storage, read as a flat tensor."""
    if not isinstance(blob, bytes):
        raise RewritingError(f"refusing {where}: a storage is not stored as bytes")
    stream = io.BytesIO(blob)
    header = [_Refusing(stream, {}, where).load() for _ in range(3)]
    if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL:
        raise RewritingError(f"refusing {where}: a storage is not a legacy torch.save blob")
    reader = _StorageReader(stream, where)
    root = reader.load()
    keys = _Refusing(stream, {}, where).load()
    if not isinstance(keys, list) or keys != [root] or root not in reader.storages:
        raise RewritingError(f"refusing {where}: a storage blob holds more than one storage")
    dtype, numel = reader.storages[root]
    size = int.from_bytes(stream.read(8), "little")
    itemsize = torch.empty(0, dtype=dtype).element_size()
    raw = stream.read(size * itemsize)
    if size != numel or len(raw) != size * itemsize:
        raise RewritingError(f"refusing {where}: a storage is truncated")
    return torch.frombuffer(bytearray(raw), dtype=dtype)


def load_snapshot(path: str | Path) -> dict[str, Any]:
    """The top-level dict of a network snapshot, each network a `PersistentNet`."""
    path = Path(path)
    where = str(path)
    allowed = {
        **ALLOWED,
        ("torch.storage", "_load_from_bytes"): lambda blob: _load_storage(blob, where),
    }
    try:
        data = path.read_bytes()
        result = _Refusing(data, allowed, where).load()
    except RewritingError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OSError, MemoryError, RecursionError) as err:
        line = str(err).splitlines()[0][:160] if str(err) else ""
        raise RewritingError(
            f"cannot read network pickle {where}: the file is corrupt or not an NVIDIA network "
            f"pickle ({type(err).__name__}: {line})"
        ) from None
    if isinstance(result, PersistentNet):
        return {"G_ema": result}
    if not isinstance(result, Mapping):
        raise RewritingError(f"{where} is not an NVIDIA network snapshot (a dict of networks)")
    return dict(result)


def generator_of(snapshot: Mapping[str, Any], where: str) -> PersistentNet:
    """The generator to sample from: `G_ema` (the averaged weights), else `G`."""
    for key in ("G_ema", "G"):
        net = snapshot.get(key)
        if isinstance(net, PersistentNet):
            return net
    raise RewritingError(
        f"{where} holds no generator: expected a 'G_ema' or 'G' network, found keys "
        f"{sorted(map(str, snapshot))}"
    )


def as_checkpoint(net: PersistentNet) -> dict[str, Any]:
    """The generator as the plugins read it: class names, constructor kwargs and tensors."""
    if net.init_args:
        raise RewritingError("network pickle: the generator was built with positional arguments")
    return {"nvidia_classes": net.classes(), "nvidia_kwargs": net.init_kwargs,
            "nvidia_state": net.tensors()}


def read_network_pickle(path: str | Path) -> dict[str, Any]:
    """The generator of an NVIDIA network pickle as a plugin checkpoint (see `as_checkpoint`)."""
    return as_checkpoint(generator_of(load_snapshot(path), str(path)))

