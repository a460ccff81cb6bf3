"""Key statistics published beside a model on the Hub (`push --with-stats`), and adopted into
the local statistics cache when such a model is loaded and their key matches it.

Each file `stats/LAYER.safetensors` holds C and the key sample in the statistics cache's own
format: its metadata is its key (model name, weights digest, layer, truncation, sample count,
seed), its key count and a sha256 of its tensors. A loaded model adopts a file only when that
key names the loaded model's weights digest, a layer it has, and the checksum and soundness
checks of the cache hold (the model's name may differ); any other file is ignored with a note.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from safetensors import SafetensorError, safe_open

from plugins.base import HubFile
from rewriting.errors import RewritingError
from rewriting.generator import Generator
from rewriting.stats import (
    STATS_SEED,
    cache_path,
    default_cache_dir,
    key_stats,
    load_cached,
    save_atomic,
    stats_identity,
)

from .fetch import Progress, resolve

#: Where the statistics of a layer lie in a published repository.
STATS_FILE = "stats/{}.safetensors"
#: Samples of published statistics (the count edits use by default).
PUBLISHED_SAMPLES = 1000
log = logging.getLogger(__name__)


def stage_stats(
    staged: Path, published: Generator, layers: Iterable[str], samples: int = PUBLISHED_SAMPLES
) -> dict[str, Path]:
    """The statistics of `published` (the model as the repository will load) for `layers`, at
    its default truncation, from the cache or computed, staged as repository files."""
    truncation = published.check_truncation(None)
    files = {}
    for layer in sorted(set(layers)):
        stats = key_stats(published, published.layer(layer), truncation, samples)
        name = STATS_FILE.format(layer)
        (staged / name).parent.mkdir(parents=True, exist_ok=True)
        save_atomic(staged / name, stats)
        files[name] = staged / name
    return files


def adopt_stats(
    generator: Generator, names: list[str], repo_id: str, commit: str,
    progress: Progress | None = None,
) -> list[str]:
    """Fetch a repository's published statistics and cache those whose key matches the loaded
    `generator`; returns a note for each one ignored (also logged)."""
    notes = []
    for name in names:
        path = resolve(HubFile(repo_id, name, commit), progress)
        reason = _adopt(generator, Path(path))
        if reason:
            notes.append(f"hub:{repo_id}: ignoring its published statistics {name} ({reason})")
            log.warning(notes[-1])
    return notes


def _adopt(generator: Generator, path: Path) -> str | None:
    """Cache the statistics at `path` for `generator`, or say why they do not fit it."""
    try:
        with safe_open(path, "pt") as handle:
            stored = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        return f"unreadable: {err}"
    try:
        spec = generator.layer(stored.get("layer"))
        truncation = json.loads(stored.get("truncation", ""))
        meta = stats_identity(generator, spec, truncation, int(stored.get("samples", "")),
                              int(stored.get("seed", STATS_SEED)))
    except (RewritingError, ValueError, TypeError) as err:
        return f"its key is malformed or names no layer of this model: {err}"
    # The weights digest identifies the model; its name may change with the repository's.
    differs = [key for key, value in meta.items() if key != "model" and stored.get(key) != value]
    if differs:
        return f"made for another model or setting: {', '.join(differs)} differ"
    stats = load_cached(path, {**meta, "model": stored.get("model", "")}, spec.key_channels)
    if stats is None:
        return "their checksum or contents are not sound"
    save_atomic(cache_path(default_cache_dir(), meta), replace(stats, meta=meta))
    return None
