"""Convert an NVIDIA network pickle once into a folder of safetensors + config.json.

A converted folder holds `model.safetensors` (the generator's tensors by NVIDIA's names) and
`config.json` (family, constructor kwargs, module classes, the source file's sha256), so the
model loads without ever unpickling again (`zoo.checkpoint.read_converted` reads it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from plugins.base import LocalFile, ModelEntry
from rewriting.atomic import as_json, write_folder
from rewriting.errors import RewritingError

from .checkpoint import CONFIG, FORMAT, NVIDIA_LICENSE, WEIGHTS, file_sha256, nvidia_family
from .loader import build_checked
from .nvidia_pickle import read_network_pickle
from .registry import plugin


def convert(source: str | Path, out: str | Path) -> dict[str, Any]:
    """Write `out`/model.safetensors and config.json from the network pickle `source`.

    The generator is built first (so an unsupported network fails before anything is
    written); `out` must not exist or be empty. Returns the config written.
    """
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
