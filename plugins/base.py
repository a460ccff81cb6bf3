"""The plugin interface: a generator family, where its checkpoints come from, and its catalog.

A plugin module (built-in in `plugins/`, or a third-party package registered under the
entry-point group `rewriting.generators`) exposes one `Plugin`. The zoo turns a `ModelEntry`
into a local file (download, cache, hash check) and calls `Plugin.build` on what it read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from rewriting.errors import RewritingError
from rewriting.generator import Generator
from rewriting.photo import FaceFraming


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


def load_strict(net: nn.Module, state: Mapping[str, Tensor], title: str) -> None:
    """Load `state` into `net` exactly; a mismatch is a message naming the tensors concerned."""
    expected = set(net.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise RewritingError(
            f"{title} checkpoint does not match the architecture its shapes imply: "
            f"missing {missing[:6]}{' ...' if len(missing) > 6 else ''}, "
            f"unexpected {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}"
        )
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RewritingError(f"{title} checkpoint has inconsistent shapes: {err}") from None
