"""The plugin interface: a generator family, where its checkpoints come from, and its catalog.

A plugin module (built-in in `plugins/`, or a third-party package registered under the
entry-point group `rewriting.generators`) exposes one `Plugin`. The zoo turns a `ModelEntry`
into a local file (download, cache, hash check) and calls `Plugin.build` on what it read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from rewriting.errors import RewritingError
from rewriting.generator import Generator
from rewriting.limits import MAX_CHANNELS, MAX_NETWORK_PARAMETERS, MAX_RESOLUTION, check_count
from rewriting.photo import FaceFraming

Net = TypeVar("Net", bound=nn.Module)


@dataclass(frozen=True)
class HubFile:
    """A file in a Hugging Face Hub model repository."""

    repo_id: str
    filename: str
    revision: str = "main"
    sha256: str | None = None

    def __str__(self) -> str:
        return f"hub:{self.repo_id}/{self.filename}@{self.revision}"


@dataclass(frozen=True)
class UrlFile:
    """A file on a plain web server; `sha256` may be a prefix (torch.hub's naming convention)."""

    url: str
    sha256: str | None = None

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class PackageFile:
    """A resource shipped inside an installed Python package, with its sha256 when known."""

    package: str
    resource: str
    sha256: str | None = None

    def __str__(self) -> str:
        return f"package:{self.package}/{self.resource}"


@dataclass(frozen=True)
class LocalFile:
    """A checkpoint on the local disk."""

    path: str

    def __str__(self) -> str:
        return self.path


Source = HubFile | UrlFile | PackageFile | LocalFile


@dataclass(frozen=True)
class ModelEntry:
    """One concrete pretrained checkpoint of a family, as listed by `python -m rewriting models`."""

    name: str
    family: str
    source: Source
    license: str
    description: str = ""
    default_layer: str | None = None
    size_bytes: int | None = None
    #: Family-specific build options (for example a default truncation).
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Output size in pixels when the catalog knows it (the file's own shapes decide at load).
    resolution: int | None = None
    #: Why the tool cannot load this listed file yet; None when it can.
    unsupported: str | None = None
    #: For a face model, how its training images frame the face (a photo's default crop).
    face_framing: FaceFraming | None = None


#: Build a generator from a loaded checkpoint object (whatever `torch.load` or safetensors gave).
BuildFn = Callable[[Any, ModelEntry, str], Generator]


@dataclass(frozen=True)
class Plugin:
    """A generator family: how to build it from a checkpoint, and its pretrained models."""

    family: str
    build: BuildFn
    models: tuple[ModelEntry, ...] = ()
    description: str = ""


def _shown_names(names: list[str]) -> str:
    """The first six names, each cut to 80 characters, for a one-line message."""
    return f"{[n[:80] for n in names[:6]]}{' ...' if len(names) > 6 else ''}"


def check_names(expected: Collection[str], state: Mapping[Any, Any], title: str) -> None:
    """Refuse a state dict whose tensor names are not exactly `expected`, naming the odd ones."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(str(k) for k in state if k not in expected)
    if missing or unexpected:
        raise RewritingError(
            f"{title} checkpoint does not match the architecture its shapes imply: "
            f"missing {_shown_names(missing)}, unexpected {_shown_names(unexpected)}"
        )


def load_strict(net: nn.Module, state: Mapping[str, Tensor], title: str) -> None:
    """Load `state` into `net` exactly; a mismatch is a message naming the tensors concerned."""
    check_names(net.state_dict().keys(), state, title)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RewritingError(f"{title} checkpoint has inconsistent shapes: {err}") from None


def _check_size(shapes: Mapping[str, tuple[int, ...]], title: str) -> None:
    """Refuse a network of more than MAX_NETWORK_PARAMETERS numbers, or with an empty tensor."""
    total = sum(math.prod(shape) for shape in shapes.values())
    if total > MAX_NETWORK_PARAMETERS:
        raise RewritingError(f"the {title} network the checkpoint describes would hold {total} "
                             f"numbers; the limit is {MAX_NETWORK_PARAMETERS}")
    empty = [name for name, shape in shapes.items() if 0 in shape]
    if empty:
        raise RewritingError(f"the {title} network the checkpoint describes has an empty tensor "
                             f"{empty[0]!r} {list(shapes[empty[0]])}")


def _check_tensors(shapes: Mapping[str, tuple[int, ...]], state: Mapping[str, Any],
                   title: str) -> None:
    """Refuse stored tensors that are not dense CPU tensors of the expected shapes, or that
    repeat numbers (stride 0, overlapping views): they must hold every number they give."""
    given, held = 0, {}
    for name, shape in shapes.items():
        tensor = state[name]
        if not isinstance(tensor, Tensor) or tensor.layout != torch.strided or (
            tensor.device.type != "cpu" or tensor.is_quantized or tensor.is_complex()
        ):
            raise RewritingError(f"{title} checkpoint: {name!r} is not a plain tensor")
        if tuple(tensor.shape) != shape:
            raise RewritingError(f"{title} checkpoint has inconsistent shapes: {name!r} is "
                                 f"{list(tensor.shape)} where its other tensors imply "
                                 f"{list(shape)}")
        given += tensor.numel() * tensor.element_size()
        storage = tensor.untyped_storage()
        held[storage.data_ptr()] = storage.nbytes()
    if given > sum(held.values()):
        raise RewritingError(f"{title} checkpoint: its tensors repeat numbers of their storage "
                             "(stride 0 or overlapping views); each must hold its own")


def build_matching(make: Callable[[], Net], state: Mapping[str, Any], title: str,
                   own: Collection[str] = ()) -> Net:
    """`make()` loaded with `state`, built only once its layout, found on the meta device (no
    memory), has exactly the names and shapes of `state` (`own`: tensors the network makes
    itself) within MAX_NETWORK_PARAMETERS numbers, so a refused file costs only its own bytes."""
    with torch.device("meta"):
        shapes = {name: tuple(t.shape) for name, t in make().state_dict().items()}
    _check_size(shapes, title)
    check_names([name for name in shapes if name not in own], state, title)
    _check_tensors({n: s for n, s in shapes.items() if n not in own}, state, title)
    net = make()
    made = net.state_dict()
    load_strict(net, {**state, **{name: made[name] for name in own}}, title)
    return net


def layer_indices(state: Mapping[Any, Any], pattern: str) -> list[int]:
    """The numbers N of the keys matching `pattern` (whose group is N), sorted; a number of more
    than 9 digits is left out (its key is then an unexpected name)."""
    found = (re.fullmatch(pattern, str(key)) for key in state)
    return sorted(int(m.group(1)) for m in found if m and len(m.group(1)) <= 9)


def declared_size(state: Mapping[Any, Any], key: str, axis: int, title: str,
                  high: int = MAX_CHANNELS) -> int:
    """The size along `axis` of the checkpoint's tensor `key`: a count from 1 to `high`."""
    tensor = state.get(key)
    if not isinstance(tensor, Tensor) or tensor.dim() <= axis:
        raise RewritingError(f"{title} checkpoint lacks the tensor {key!r} "
                             f"(with at least {axis + 1} dimensions)")
    return check_count(tensor.shape[axis], f"{title} tensor {key!r} size {axis}", 1, high)


def check_doublings(count: int, title: str) -> None:
    """Refuse a network that doubles a 4x4 map `count` times past MAX_RESOLUTION pixels."""
    check_count(count, f"{title} upsampling steps after 4x4 (from the checkpoint's layer names)",
                0, int(math.log2(MAX_RESOLUTION // 4)))
