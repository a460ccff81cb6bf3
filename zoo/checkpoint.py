"""Read a checkpoint safely: safetensors, torch.load with weights_only=True, or an NVIDIA
network pickle through the data-only reader of `zoo.nvidia_pickle`; never a plain unpickle."""

from __future__ import annotations

import functools
import hashlib
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from rewriting.errors import RewritingError


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks; a file unchanged since is not read twice."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, _size: int, _mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_sha256(path: str | Path) -> str:
    """The sha256 of a checkpoint file, or of a converted folder's weights file."""
    path = Path(path)
    return file_sha256(path / "model.safetensors" if path.is_dir() else path)


def read_checkpoint(path: str | Path) -> Any:
    """The tensors of a checkpoint; a corrupt, truncated or code-carrying file is a clear error."""
    path = Path(path)
    if path.is_dir():
        from .convert import read_converted

        return read_converted(path)
    if path.suffix == ".pkl" and path.is_file() and not zipfile.is_zipfile(path):
        from .nvidia_pickle import read_network_pickle

        return read_network_pickle(path)
    if not path.is_file():
        raise RewritingError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise RewritingError(
            f"cannot read checkpoint {path}: the file is corrupt, truncated or not a "
            f"weights-only checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        ) from None
    except Exception as err:  # the weights-only unpickler refuses arbitrary code this way
        raise RewritingError(
            f"refusing to load {path}: it is not a plain tensor checkpoint "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        ) from None
