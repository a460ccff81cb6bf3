"""Read NVIDIA network pickles (StyleGAN2-ADA, StyleGAN3) as plain data, never running their code.

A snapshot (`network-snapshot-*.pkl`) pickles each network as
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, where `meta` carries the module's
source (`module_src`), the class name and the module's `__dict__`. NVIDIA's loader executes that
source; this reader instead resolves every reference the file names through an allow-list of
stand-ins that only build data: dicts, tensors and numbers. Each network comes back as a
`PersistentNet` tree (class name, constructor kwargs, parameters, buffers, children); the
embedded source is never imported, compiled or executed.

What one file may make the reader build is bounded before it is built (`rewriting.limits`):
pickle operations, modules and their nesting, constructor kwargs (a value the memo shares is
counted at each place it is copied), and tensor bytes (no more than the file's own size; a view
must lie inside its storage without stride 0 or overlap). Only the stand-ins that take a state
accept BUILD, and dict keys and set items are plain values, so hashing one takes no time.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewriting.errors import RewritingError
from rewriting.limits import (
    MAX_KWARGS_DEPTH,
    MAX_KWARGS_VALUES,
    MAX_MODULE_DEPTH,
    MAX_NAME,
    MAX_PICKLE_MODULES,
    MAX_PICKLE_OPS,
    MAX_TENSOR_DIMS,
)

#: The first pickles of a legacy (non-zip) `torch.save` stream.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
#: numpy dtype kinds a stored number or array may have (no objects, no strings).
NUMERIC_KINDS = "biuf"
#: Longest numpy type code (NVIDIA's are like 'f8' and '<f4').
MAX_DTYPE_CODE = 16
#: What a dict key or set item may be: hashing anything else (a tuple nested through the memo)
#: could take exponential time.
ATOMS = (str, int, float, bool, bytes, type(None))
#: What an exception raised while reading means: the opcodes or the data they carry are malformed.
MALFORMED = (pickle.UnpicklingError, struct.error, EOFError, ValueError, TypeError,
             AttributeError, LookupError, ArithmeticError, RuntimeError, MemoryError)


class _Budget:
    """What one file may still make the reader build; the stand-ins draw on it as they work."""

    def __init__(self, where: str, nbytes: int) -> None:
        self.where = where
        self.left = {"pickle operations": MAX_PICKLE_OPS, "modules": MAX_PICKLE_MODULES,
                     "constructor kwargs values": MAX_KWARGS_VALUES, "tensor bytes": nbytes}
        self.levels: dict[int, int] = {}  # id of each network read: its levels of modules
        self.adopted: dict[int, PersistentNet] = {}  # networks already some module's child

    def spend(self, kind: str, amount: int = 1) -> None:
        """Charge `amount` of `kind`; past the limit the whole file is refused."""
        self.left[kind] -= amount
        if self.left[kind] < 0:
            raise RewritingError(f"refusing {self.where}: reading it would take more {kind} "
                                 "than allowed (see Security and limits)")

    def adopt(self, child: PersistentNet, parent: str) -> None:
        """Take `child` as a submodule of `parent`; a module may have one parent only."""
        if id(child) in self.adopted:
            raise RewritingError(f"refusing {self.where}: a {child.class_name[:60]} module is "
                                 f"a submodule twice (again in {parent[:60]})")
        self.adopted[id(child)] = child


#: The budget of the file being read (the stand-ins are functions the unpickler calls).
_BUDGET: ContextVar[_Budget] = ContextVar("nvidia_pickle_budget")


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


def _plain(value: Any, budget: _Budget, depth: int = 1) -> Any:
    """Numbers, strings and containers as JSON-friendly Python values, each value copied charged
    to the file's budget (a value the pickle shares is copied at each place it appears)."""
    budget.spend("constructor kwargs values")
    if depth > MAX_KWARGS_DEPTH:
        raise RewritingError(f"refusing {budget.where}: constructor kwargs are nested more than "
                             f"{MAX_KWARGS_DEPTH} levels deep")
    if isinstance(value, _NDArray):
        if value.array is None:
            return None
        budget.spend("constructor kwargs values", value.array.size)
        return value.array.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v, budget, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, budget, depth + 1) for v in value]
    return value


def _mapping(state: Mapping[str, Any], key: str, class_name: str) -> Mapping[str, Any]:
    value = state.get(key, {})
    if not isinstance(value, Mapping):
        raise RewritingError(f"network pickle: {class_name}.{key} is not a dict")
    return value


def _tensors(value: Mapping[str, Any], what: str) -> dict[str, torch.Tensor | None]:
    for name, tensor in value.items():
        if tensor is not None and not isinstance(tensor, torch.Tensor):
            raise RewritingError(f"network pickle: {what} {str(name)[:60]!r} is not a tensor")
    return {str(name): tensor for name, tensor in value.items()}


def _children(state: Mapping[str, Any], class_name: str, budget: _Budget
              ) -> dict[str, PersistentNet]:
    """The submodules of a module, each adopted once (so the modules form a tree)."""
    children = {}
    for name, child in _mapping(state, "_modules", class_name).items():
        if child is None:
            continue
        if not isinstance(child, PersistentNet):
            raise RewritingError(
                f"network pickle: submodule {class_name}.{str(name)[:60]} is a "
                f"{type(child).__name__}, not a persistent network"
            )
        budget.adopt(child, class_name)
        children[str(name)] = child
    return children


def _reconstruct_persistent_obj(meta: Any) -> PersistentNet:
    """Stand-in for NVIDIA's persistence hook: keep the state, ignore `module_src`."""
    budget = _BUDGET.get()
    budget.spend("modules")
    if not isinstance(meta, Mapping) or meta.get("type") != "class":
        kind = meta.get("type") if isinstance(meta, Mapping) else None
        shown = kind[:40] if isinstance(kind, str) else type(kind or meta).__name__
        raise RewritingError(f"network pickle holds a persistent {shown!r}, not a class")
    class_name, state = meta.get("class_name"), meta.get("state")
    if not isinstance(class_name, str) or len(class_name) > MAX_NAME or not isinstance(
        state, Mapping
    ):
        raise RewritingError("network pickle: a persistent object lacks its class name or state")
    children = _children(state, class_name, budget)
    levels = 1 + max((budget.levels[id(c)] for c in children.values()), default=0)
    if levels > MAX_MODULE_DEPTH:
        raise RewritingError(f"refusing {budget.where}: its modules are nested more than "
                             f"{MAX_MODULE_DEPTH} levels deep")
    kwargs = state.get("_init_kwargs", {})
    args = state.get("_init_args", ())
    if not isinstance(kwargs, Mapping) or not isinstance(args, (tuple, list)):
        raise RewritingError(f"network pickle: {class_name} has malformed constructor arguments")
    attributes = {
        k: v.array if isinstance(v, _NDArray) else v
        for k, v in state.items()
        if not str(k).startswith("_")
    }
    net = PersistentNet(
        class_name=class_name,
        init_args=tuple(_plain(args, budget)),
        init_kwargs=_plain(kwargs, budget),
        parameters=_tensors(_mapping(state, "_parameters", class_name), "parameter"),
        buffers=_tensors(_mapping(state, "_buffers", class_name), "buffer"),
        children=children,
        attributes=attributes,
    )
    budget.levels[id(net)] = levels
    return net


def _is_count(value: Any) -> bool:
    """Whether `value` is a non-negative int (not a bool, a float or an infinity)."""
    return type(value) is int and value >= 0


def _check_view(numel: int, offset: Any, size: Any, stride: Any, where: str) -> None:
    """Refuse a view that is not whole numbers, repeats elements (stride 0, overlap) or reaches
    outside a storage of `numel` elements; such a view holds no more numbers than its storage."""
    if not (
        _is_count(offset) and isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))
        and len(size) == len(stride) <= MAX_TENSOR_DIMS and all(map(_is_count, (*size, *stride)))
    ):
        raise RewritingError(f"refusing {where}: a tensor's offset, shape or strides are not "
                             f"{MAX_TENSOR_DIMS} or fewer whole numbers")
    reach = 0  # the farthest element the dimensions of smaller strides reach
    for step, count in sorted((st, sz) for sz, st in zip(size, stride, strict=True) if sz > 1):
        if step <= reach:
            raise RewritingError(f"refusing {where}: a tensor repeats elements of its storage "
                                 "(a stride of 0 or overlapping dimensions)")
        reach += step * (count - 1)
    if offset + reach >= numel:
        raise RewritingError(f"refusing {where}: a tensor reaches outside its storage")


def _rebuild_tensor_v2(
    storage: torch.Tensor, offset: int, size: tuple, stride: tuple, requires_grad: bool = False,
    backward_hooks: Any = None, metadata: Any = None,
) -> torch.Tensor:
    """A tensor viewing `storage` (a flat tensor from `_load_from_bytes`), copied out once the
    view is checked; the copy is charged to the file's budget."""
    if not isinstance(storage, torch.Tensor):
        raise RewritingError("network pickle: a tensor refers to something other than a storage")
    budget = _BUDGET.get()
    _check_view(storage.numel(), offset, size, stride, budget.where)
    budget.spend("tensor bytes", math.prod(size) * storage.element_size())
    return storage.as_strided(tuple(size), tuple(stride), offset).clone()


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool, hooks: Any) -> torch.Tensor:
    """A parameter is kept as its plain tensor; hooks are never attached."""
    if not isinstance(data, torch.Tensor):
        raise RewritingError("network pickle: a parameter holds no tensor")
    return data


class _DType:
    """Stand-in for `numpy.dtype`: remembers the type code and byte order only."""

    def __init__(self, code: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(code, str) or len(code) > MAX_DTYPE_CODE:
            raise RewritingError("network pickle: a numpy type code is not short text")
        self.code = code
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
        if not (isinstance(shape, (tuple, list)) and len(shape) <= MAX_TENSOR_DIMS
                and all(map(_is_count, shape))):
            raise RewritingError("network pickle: a numpy array's shape is not whole numbers")
        _BUDGET.get().spend("tensor bytes", len(data))
        resolved = dtype.resolve()
        try:
            flat = np.frombuffer(data, dtype=resolved)
            self.array = flat.reshape(tuple(shape), order="F" if fortran else "C").copy()
        except ValueError as err:
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
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, ATOMS) for i in items):
        raise RewritingError("network pickle: a set of something other than plain values")
    return set(items)


def _ordered_dict(*args: Any) -> OrderedDict:
    if args:
        raise RewritingError("network pickle: OrderedDict called with arguments")
    return OrderedDict()


def _numpy_names(name: str, value: Any) -> dict[tuple[str, str], Any]:
    return {(f"numpy.{core}.multiarray", name): value for core in ("core", "_core")}


#: The storage classes a nested legacy `torch.save` blob may name, by element type.
STORAGES: dict[tuple[str, str], torch.dtype] = {("torch", "FloatStorage"): torch.float32}
#: The stand-ins that take a state (BUILD) or may be made by NEWOBJ; nothing else may.
STATEFUL = (_DType, _NDArray, _EasyDict)


class _Refusing(pickle._Unpickler):  # the Python unpickler, so each opcode can be guarded
    """An unpickler that resolves names only through `allowed` and refuses anything else, and
    charges every operation to the file's budget."""

    def __init__(self, data: bytes | io.BytesIO, allowed: Mapping[tuple[str, str], Any],
                 budget: _Budget) -> None:
        super().__init__(io.BytesIO(data) if isinstance(data, bytes) else data)
        self.allowed = allowed
        self.budget = budget
        self.where = budget.where

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("dnnlib.tflib"):
            raise RewritingError(
                f"refusing {self.where}: it is a TensorFlow-era NVIDIA pickle "
                f"({module[:60]}.{name[:60]}), a different format (TensorFlow variables) that is "
                "not supported yet"
            )
        if (module, name) not in self.allowed:
            raise RewritingError(
                f"refusing {self.where}: it refers to {module[:60]}.{name[:60]}, which an NVIDIA "
                "network pickle never needs (nothing from the file was run)"
            )
        return self.allowed[(module, name)]

    def persistent_load(self, pid: Any) -> Any:
        raise RewritingError(f"refusing {self.where}: unexpected persistent id (a "
                             f"{type(pid).__name__})")

    def refuse_unless(self, ok: bool, what: str) -> None:
        """Refuse the file at this opcode unless `ok`."""
        if not ok:
            raise RewritingError(f"refusing {self.where}: {what}, which an NVIDIA network "
                                 "pickle never holds")

    def plain_keys(self, keys: list) -> None:
        self.refuse_unless(all(isinstance(k, ATOMS) for k in keys),
                           "a dict key or set item is not a plain value")

    def load_build(self) -> None:
        self.refuse_unless(isinstance(self.stack[-2], STATEFUL),
                           f"it sets the state of a {type(self.stack[-2]).__name__}")
        super().load_build()

    def load_newobj(self) -> None:
        self.refuse_unless(self.stack[-2] in STATEFUL, "it makes an object of another class")
        super().load_newobj()

    def load_newobj_ex(self) -> None:
        self.refuse_unless(self.stack[-3] in STATEFUL, "it makes an object of another class")
        super().load_newobj_ex()

    def load_setitem(self) -> None:
        self.refuse_unless(isinstance(self.stack[-3], dict), "it sets an item of a non-dict")
        self.plain_keys([self.stack[-2]])
        super().load_setitem()

    def load_setitems(self) -> None:
        self.refuse_unless(isinstance(self.metastack[-1][-1], dict),
                           "it sets items of a non-dict")
        self.plain_keys(self.stack[::2])
        super().load_setitems()

    def load_dict(self) -> None:
        self.plain_keys(self.stack[::2])
        super().load_dict()

    def load_additems(self) -> None:
        self.refuse_unless(isinstance(self.metastack[-1][-1], set), "it adds to a non-set")
        self.plain_keys(self.stack)
        super().load_additems()

    def load_frozenset(self) -> None:
        self.plain_keys(self.stack)
        super().load_frozenset()


def _charged(load: Callable[[_Refusing], None]) -> Callable[[_Refusing], None]:
    """An opcode's handler that first charges one pickle operation to the file's budget."""

    def run(self: _Refusing) -> None:
        self.budget.spend("pickle operations")
        load(self)

    return run


_GUARDED = {
    pickle.BUILD: _Refusing.load_build, pickle.NEWOBJ: _Refusing.load_newobj,
    pickle.NEWOBJ_EX: _Refusing.load_newobj_ex, pickle.SETITEM: _Refusing.load_setitem,
    pickle.SETITEMS: _Refusing.load_setitems, pickle.DICT: _Refusing.load_dict,
    pickle.ADDITEMS: _Refusing.load_additems, pickle.FROZENSET: _Refusing.load_frozenset,
}
_Refusing.dispatch = {
    code: _charged(load)
    for code, load in {**pickle._Unpickler.dispatch, **{op[0]: f for op, f in _GUARDED.items()}}
    .items()
}


class _StorageReader(_Refusing):
    """The object pickle of a legacy `torch.save` blob: its one storage, by persistent id."""

    def __init__(self, stream: io.BytesIO, budget: _Budget) -> None:
        super().__init__(stream, STORAGES, budget)
        self.storages: dict[str, tuple[torch.dtype, int]] = {}

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            return super().persistent_load(pid)
        _, dtype, key, _location, numel = pid[:5]
        if not (isinstance(dtype, torch.dtype) and isinstance(key, (str, int))
                and _is_count(numel)):
            raise RewritingError(f"refusing {self.where}: malformed storage record")
        if len(pid) > 5 and pid[5] is not None:
            raise RewritingError(f"refusing {self.where}: storage views are not supported")
        self.storages[str(key)] = (dtype, numel)
        return str(key)


def _load_storage(blob: bytes) -> torch.Tensor:
    """A legacy `torch.save` blob of one storage, read as a flat tensor."""
    budget = _BUDGET.get()
    where = budget.where
    if not isinstance(blob, bytes):
        raise RewritingError(f"refusing {where}: a storage is not stored as bytes")
    stream = io.BytesIO(blob)
    header = [_Refusing(stream, {}, budget).load() for _ in range(3)]
    if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL:
        raise RewritingError(f"refusing {where}: a storage is not a legacy torch.save blob")
    reader = _StorageReader(stream, budget)
    root = reader.load()
    keys = _Refusing(stream, {}, budget).load()
    if not isinstance(keys, list) or keys != [root] or root not in reader.storages:
        raise RewritingError(f"refusing {where}: a storage blob holds more than one storage")
    dtype, numel = reader.storages[root]
    size = int.from_bytes(stream.read(8), "little")
    itemsize = torch.empty(0, dtype=dtype).element_size()
    raw = stream.read(size * itemsize)
    if size != numel or len(raw) != size * itemsize:
        raise RewritingError(f"refusing {where}: a storage is truncated")
    return torch.frombuffer(bytearray(raw), dtype=dtype)


#: Every reference a network snapshot may name, and the data-only stand-in it resolves to.
ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("numpy", "dtype"): _DType,
    ("numpy", "ndarray"): _NDARRAY_CLASS,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("builtins", "set"): _set,
    ("__builtin__", "set"): _set,
    **_numpy_names("scalar", _numpy_scalar),
    **_numpy_names("_reconstruct", _numpy_reconstruct),
}


def load_snapshot(path: str | Path) -> dict[str, Any]:
    """The top-level dict of a network snapshot, each network a `PersistentNet`."""
    path = Path(path)
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RewritingError(f"cannot read network pickle {where}: {err.strerror or err}") from None
    budget = _Budget(where, len(data))
    token = _BUDGET.set(budget)
    try:
        result = _Refusing(data, ALLOWED, budget).load()
    except RewritingError:
        raise
    except MALFORMED as err:
        line = str(err).splitlines()[0][:160] if str(err) else ""
        raise RewritingError(
            f"cannot read network pickle {where}: the file is corrupt or not an NVIDIA network "
            f"pickle ({type(err).__name__}: {line})"
        ) from None
    finally:
        _BUDGET.reset(token)
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
    keys = sorted(str(key)[:40] for key in snapshot)
    raise RewritingError(
        f"{where} holds no generator: expected a 'G_ema' or 'G' network, found keys "
        f"{keys[:8]}{' ...' if len(keys) > 8 else ''}"
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

