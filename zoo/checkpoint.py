"""Read a checkpoint safely: safetensors, torch.load with weights_only=True, a folder written by
`convert`, or an NVIDIA network pickle through the data-only reader of `zoo.nvidia_pickle`;
never a plain unpickle. Also which family and license a local file has."""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from plugins.stylegan2 import NVIDIA_NC
from rewriting.errors import RewritingError
from rewriting.limits import (
    MAX_CHECKPOINT_TENSORS,
    MAX_HEADER_BYTES,
    MAX_NAME,
    MAX_NETWORK_PARAMETERS,
    MAX_TORCH_PICKLE_BYTES,
    read_json_file,
)

from .nvidia_pickle import read_network_pickle

#: NVIDIA network pickles embed NVIDIA's source code, under its non-commercial license; so do
#: the weights read from them.
NVIDIA_LICENSE = NVIDIA_NC
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = "nvidia-network"
#: The families a converted folder may name.
NVIDIA_FAMILIES = ("stylegan2-ada", "stylegan3")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks; a file unchanged since is not read twice.

    "Unchanged" is the same inode, size and modification and change times (the change time
    cannot be set back by hand, so a file swapped in place is read again).
    """
    stat = Path(path).stat()
    changed = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return _sha256(str(Path(path).resolve()), changed)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, _changed: tuple[int, ...]) -> str:
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
        return read_converted(path)
    if path.suffix == ".pkl" and path.is_file() and not zipfile.is_zipfile(path):
        return read_network_pickle(path)
    if not path.is_file():
        raise RewritingError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            return read_safetensors(path)
        _check_torch_pickle(path)
        with warnings.catch_warnings():  # the verdict below is the one line the user needs
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except RewritingError:
        raise
    except (SafetensorError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise RewritingError(
            f"cannot read checkpoint {path}: the file is corrupt, truncated or not a "
            f"weights-only checkpoint ({_first_line(err)})"
        ) from None
    except Exception as err:  # the weights-only unpickler refuses arbitrary code this way
        raise RewritingError(
            f"refusing to load {path}: it is not a plain tensor checkpoint (unpickling it would "
            f"build objects other than tensors: {type(err).__name__})"
        ) from None


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, once its header (read alone) shows at most
    MAX_CHECKPOINT_TENSORS tensors of MAX_NETWORK_PARAMETERS numbers in all."""
    with open(path, "rb") as handle:
        header_bytes = int.from_bytes(handle.read(8), "little")
    if header_bytes > MAX_HEADER_BYTES:
        raise RewritingError(f"refusing {path}: its header is {header_bytes} bytes; the limit "
                             f"is {MAX_HEADER_BYTES}")
    with safe_open(path, "pt") as weights:
        names = list(weights.keys())
        if len(names) > MAX_CHECKPOINT_TENSORS:
            raise RewritingError(f"refusing {path}: it holds {len(names)} tensors; the limit "
                                 f"is {MAX_CHECKPOINT_TENSORS}")
        numbers = sum(math.prod(weights.get_slice(name).get_shape()) for name in names)
    if numbers > MAX_NETWORK_PARAMETERS:
        raise RewritingError(f"refusing {path}: its tensors hold {numbers} numbers; the limit "
                             f"is {MAX_NETWORK_PARAMETERS}")
    return load_file(path)


def _check_torch_pickle(path: Path) -> None:
    """Refuse a torch.save zip whose object pickle is over MAX_TORCH_PICKLE_BYTES, read from the
    zip's directory alone (a legacy, non-zip file has no directory to read it from)."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as archive:
        size = max((i.file_size for i in archive.infolist() if i.filename.endswith(".pkl")),
                   default=0)
    if size > MAX_TORCH_PICKLE_BYTES:
        raise RewritingError(f"refusing {path}: its object pickle is {size} bytes; the limit is "
                             f"{MAX_TORCH_PICKLE_BYTES}")


def _first_line(err: BaseException) -> str:
    """The exception's type and the first line of its message (which may be empty)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__


def nvidia_family(checkpoint: dict[str, Any]) -> str:
    """`stylegan3` for a generator with a Fourier-feature input, else `stylegan2-ada`."""
    classes = checkpoint.get("nvidia_classes") or {}
    return "stylegan3" if "SynthesisInput" in classes.values() else "stylegan2-ada"


def read_converted(folder: str | Path) -> dict[str, Any]:
    """The plugin checkpoint of a converted folder (see `zoo.nvidia_pickle.as_checkpoint`)."""
    folder = Path(folder)
    missing = [name for name in (CONFIG, WEIGHTS) if not (folder / name).is_file()]
    if missing:
        raise RewritingError(
            f"{folder} is a folder but not a converted model ({' and '.join(missing)} missing; "
            "`python -m rewriting convert` writes them)"
        )
    config = read_json_file(folder / CONFIG, "converted model config")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise RewritingError(f"{folder / CONFIG} is not a config written by `convert`")
    classes, family, license = (config.get(k) for k in ("classes", "family", "license"))
    if not (
        isinstance(classes, dict) and all(isinstance(c, str) for c in classes.values())
        and family in (None, *NVIDIA_FAMILIES) and isinstance(license, (str, type(None)))
        and len(license or "") <= MAX_NAME
    ):
        raise RewritingError(
            f"{folder / CONFIG}: 'classes' must map module paths to class names, 'family' be "
            f"one of {', '.join(NVIDIA_FAMILIES)} and 'license' a name"
        )
    try:
        state = read_safetensors(folder / WEIGHTS)
    except (OSError, SafetensorError) as err:
        raise RewritingError(
            f"{folder} is not a converted model folder ({CONFIG} + {WEIGHTS}): "
            f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
        ) from None
    return {"nvidia_kwargs": config.get("init_kwargs"), "nvidia_classes": classes,
            "nvidia_state": state, "family": family, "license": license}


def is_local_model(name: str) -> bool:
    """Whether a model name is the path of a network pickle, a converted folder or a .pt file."""
    path = Path(name)
    return (path.suffix in (".pkl", ".pt") and path.is_file()) or (path / CONFIG).is_file()


def local_family(checkpoint: Any, name: str) -> str:
    """The family of a local checkpoint: NVIDIA's by its classes, rosinality's by its keys."""
    if isinstance(checkpoint, dict) and "nvidia_state" in checkpoint:
        return checkpoint.get("family") or nvidia_family(checkpoint)
    if isinstance(checkpoint, dict) and {"g_ema", "conv1.conv.weight"} & set(checkpoint):
        return "stylegan2"
    raise RewritingError(
        f"{name}: not an NVIDIA network pickle, converted folder or rosinality StyleGAN2 "
        "checkpoint; other formats need a plugin (see 'Adding a generator')"
    )


def local_license(checkpoint: Any) -> str:
    """An NVIDIA network's license (recorded by `convert`, else NVIDIA's); others unknown."""
    if isinstance(checkpoint, dict) and "nvidia_state" in checkpoint:
        return checkpoint.get("license") or NVIDIA_LICENSE
    return "unknown (a local file)"
