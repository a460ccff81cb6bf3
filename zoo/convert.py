"""Convert an NVIDIA network pickle once into safetensors + config.json, and read such folders.

A converted folder holds `model.safetensors` (the generator's tensors by NVIDIA's names) and
`config.json` (family, constructor kwargs, module classes, the source file's sha256), so the
model loads without ever unpickling again.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import save_file

from plugins.stylegan2 import NVIDIA_NC
from rewriting.atomic import as_json, write_folder
from rewriting.errors import RewritingError
from rewriting.limits import MAX_NAME, read_json_file

from .checkpoint import file_sha256, read_safetensors
from .nvidia_pickle import read_network_pickle

#: NVIDIA network pickles embed NVIDIA's source code, under its non-commercial license; so do
#: the weights read from them.
NVIDIA_LICENSE = NVIDIA_NC
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = "nvidia-network"
#: The families a converted folder may name.
NVIDIA_FAMILIES = ("stylegan2-ada", "stylegan3")


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


def convert(source: str | Path, out: str | Path) -> dict[str, Any]:
    """Write `out`/model.safetensors and config.json from the network pickle `source`.

    The generator is built first (so an unsupported network fails before anything is
    written); `out` must not exist or be empty. Returns the config written.
    """
    from plugins.base import LocalFile, ModelEntry

    from .registry import build_checked, plugin

    source, out = Path(source), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RewritingError(f"{out} exists and is not an empty folder; choose a new --out")
    checkpoint = read_network_pickle(source)
    family = nvidia_family(checkpoint)
    entry = ModelEntry(source.stem, family, LocalFile(str(source)), "unknown")
    build_checked(plugin(family), checkpoint, entry, "unchecked", str(source))
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
    metadata = {"format": FORMAT, "family": family}
    write_folder(out, {WEIGHTS: lambda path: save_file(state, path, metadata=metadata),
                       CONFIG: as_json(config)})
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
    from .registry import build_checked, plugin

    sha256 = checkpoint_sha256(name)
    key = (str(Path(name).resolve()), sha256)
    with _local_lock:
        if key not in _local:
            checkpoint = read_checkpoint(name)
            family = local_family(checkpoint, name)
            entry = ModelEntry(name, family, LocalFile(name), local_license(checkpoint))
            _local[key] = build_checked(plugin(family), checkpoint, entry, sha256, name)
            remember_origin(_local[key], {"license": entry.license, "source": None})
        return _local[key]


def local_license(checkpoint: Any) -> str:
    """An NVIDIA network's license (recorded by `convert`, else NVIDIA's); others unknown."""
    if isinstance(checkpoint, dict) and "nvidia_state" in checkpoint:
        return checkpoint.get("license") or NVIDIA_LICENSE
    return "unknown (a local file)"
