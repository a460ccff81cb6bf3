"""Turn a checkpoint source into a local file path (package resources, local files, Hub, URLs)."""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from pathlib import Path

from plugins.base import HubFile, LocalFile, PackageFile, Source, UrlFile
from rewriting.errors import RewritingError

Progress = Callable[[float, str], None]


def resolve(source: Source, progress: Progress | None = None) -> Path:
    """A local path holding the checkpoint of `source`, downloading into the cache if needed."""
    if isinstance(source, LocalFile):
        path = Path(source.path).expanduser()
        if not path.is_file():
            raise RewritingError(f"checkpoint file {path} does not exist")
        return path
    if isinstance(source, PackageFile):
        try:
            root = importlib.resources.files(source.package)
        except ModuleNotFoundError:
            raise RewritingError(
                f"the weights ship in the Python package {source.package!r}, which is not "
                f"installed; install it (see the README)"
            ) from None
        path = Path(str(root / source.resource))
        if not path.is_file():
            raise RewritingError(f"package {source.package!r} has no resource {source.resource!r}")
        return path
    if isinstance(source, (HubFile, UrlFile)):
        raise RewritingError(f"downloading {source} is not supported yet")
    raise RewritingError(f"unknown checkpoint source {source!r}")
