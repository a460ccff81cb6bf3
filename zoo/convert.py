"""Convert an NVIDIA network pickle once into safetensors + config.json, and read such folders.

A converted folder holds `model.safetensors` (the generator's tensors by NVIDIA's names) and
`config.json` (family, constructor kwargs, module classes, the source file's sha256), so the
model loads without ever unpickling again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from plugins.stylegan2 import NVIDIA_NC
from rewriting.errors import RewritingError

from .checkpoint import file_sha256
from .nvidia_pickle import read_network_pickle

#: NVIDIA network pickles embed NVIDIA's source code, under its non-commercial license; so do
#: the weights read from them.
NVIDIA_LICENSE = NVIDIA_NC
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = "nvidia-network"


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
    try:
        config = json.loads((folder / CONFIG).read_text())
        state = load_file(folder / WEIGHTS)
    except (OSError, ValueError, SafetensorError) as err:
        raise RewritingError(
            f"{folder} is not a converted model folder ({CONFIG} + {WEIGHTS}): "
            f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
        ) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise RewritingError(f"{folder / CONFIG} is not a config written by `convert`")
    return {
        "nvidia_kwargs": config.get("init_kwargs"),
        "nvidia_classes": config.get("classes") or {},
        "nvidia_state": state,
        "family": config.get("family"),
        "license": config.get("license"),
    }


def folder_family(folder: str | Path) -> str | None:
    """The family a converted folder's config names (None if it names none)."""
    try:
        return json.loads((Path(folder) / CONFIG).read_text()).get("family")
    except (OSError, ValueError, AttributeError):
        return None


def convert(source: str | Path, out: str | Path) -> dict[str, Any]:
    """Write `out`/model.safetensors and config.json from the network pickle `source`.

    The generator is built first (so an unsupported network fails before anything is
    written); `out` must not exist or be empty. Returns the config written.
    """
    from plugins.base import LocalFile, ModelEntry

    from .registry import plugin

    source, out = Path(source), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RewritingError(f"{out} exists and is not an empty folder; choose a new --out")
    checkpoint = read_network_pickle(source)
    family = nvidia_family(checkpoint)
    entry = ModelEntry(source.stem, family, LocalFile(str(source)), "unknown")
    plugin(family).build(checkpoint, entry, "unchecked")
    config = {
        "format": FORMAT,
        "family": family,
        "class_name": checkpoint["nvidia_classes"].get("", "Generator"),
        "init_kwargs": checkpoint["nvidia_kwargs"],
        "classes": checkpoint["nvidia_classes"],
        "source_file": source.name,
        "source_sha256": file_sha256(source),
        "license": NVIDIA_LICENSE,
    }
    state = {k: v.contiguous() for k, v in checkpoint["nvidia_state"].items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        save_file(state, tmp / WEIGHTS, metadata={"format": FORMAT, "family": family})
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        for path, mode in ((tmp / WEIGHTS, 0o644), (tmp / CONFIG, 0o644), (tmp, 0o755)):
            path.chmod(mode)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return config


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


_local: dict[tuple[str, str], Any] = {}
_local_lock = threading.Lock()


def load_local(name: str) -> Any:
    """The generator of a local checkpoint file or converted folder, named by its path.

    Loaded once per file content and shared read-only, like catalog models.
    """
    from plugins.base import LocalFile, ModelEntry

    from .checkpoint import checkpoint_sha256, read_checkpoint
    from .hub import remember_origin
    from .registry import plugin

    sha256 = checkpoint_sha256(name)
    key = (str(Path(name).resolve()), sha256)
    with _local_lock:
        if key not in _local:
            checkpoint = read_checkpoint(name)
            family = local_family(checkpoint, name)
            entry = ModelEntry(name, family, LocalFile(name), local_license(checkpoint))
            _local[key] = plugin(family).build(checkpoint, entry, sha256)
            remember_origin(_local[key], {"license": entry.license, "source": None})
        return _local[key]


def local_license(checkpoint: Any) -> str:
    """An NVIDIA network's license (recorded by `convert`, else NVIDIA's); others unknown."""
    if isinstance(checkpoint, dict) and "nvidia_state" in checkpoint:
        return checkpoint.get("license") or NVIDIA_LICENSE
    return "unknown (a local file)"
