"""Key statistics C = E[k k^T] of a layer, streamed over sampled images and cached on disk.

C is the uncentered second moment over every spatial location of the keys of `samples` images
(rows 0..samples-1 of the latent seed). It is accumulated in float64 and cached as safetensors
whose metadata records everything it depends on, the key count and a sha256 of the tensors and
of that metadata; a cache file is reused only when all of it matches and its contents are sound
(finite, of the layer's shape, not all zero, a plausible count), and is otherwise computed again
and replaced. Only a regular file (or a link to one) is ever read; a cache that could not
keep new statistics (an entry of another kind where a file or folder belongs) is refused before
they are computed.
A fixed subsample of keys is kept beside C to give response quantiles over the same images.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .atomic import (
    check_output,
    fit_name,
    remove_stale_safetensors_temporaries,
    safe_name,
    write_atomically,
)
from .checksum import state_digest
from .directions import inverse_sqrt
from .errors import RewritingError
from .features import read_layer
from .generator import Generator, LayerSpec
from .limits import MAX_NAME_BYTES
from .parallel import concat_over_ranks, is_main, share, sum_over_ranks
from .render import RENDER_BATCH, fixed_batches

STATS_SEED = 2
KEY_SAMPLE_SIZE = 16384
StatsProgress = Callable[[int, int], None]


@dataclass
class KeyStats:
    """C = E[k k^T] (float64) over `count` key vectors, and a fixed sample of keys [M, C_in]."""

    second_moment: torch.Tensor
    key_sample: torch.Tensor
    count: int
    meta: dict[str, str]
    #: C^{-1/2}, computed once when the statistics are made or loaded (every edit on this
    #: model and layer whitens with it); None while C is not finite.
    whitening: torch.Tensor | None = field(default=None, repr=False, compare=False)
    #: Whether C and the key sample are finite everywhere (checked once, here).
    finite: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        c_finite = bool(torch.isfinite(self.second_moment).all())
        self.finite = c_finite and bool(torch.isfinite(self.key_sample).all())
        if self.whitening is None and c_finite:
            self.whitening = inverse_sqrt(self.second_moment)

    @property
    def key_energy(self) -> torch.Tensor:
        """E[k_c^2] per key channel (the diagonal of C)."""
        return torch.diagonal(self.second_moment)

    def to(self, device: torch.device) -> KeyStats:
        """The same statistics with their tensors on `device` (itself when they are there)."""
        if self.second_moment.device == device:
            return self
        whitening = None if self.whitening is None else self.whitening.to(device)
        return KeyStats(self.second_moment.to(device), self.key_sample.to(device), self.count,
                        self.meta, whitening)


def stats_identity(
    generator: Generator, spec: LayerSpec, truncation: float | None, samples: int, seed: int
) -> dict[str, str]:
    """Everything the statistics depend on; the cache is valid only when all of it matches."""
    return {
        "model": generator.name,
        "weights_sha256": generator.weights_sha256,
        "layer": spec.name,
        "truncation": json.dumps(truncation),
        "samples": str(samples),
        "seed": str(seed),
    }


def compute_key_stats(
    generator: Generator,
    spec: LayerSpec,
    truncation: float | None = None,
    samples: int = 1000,
    seed: int = STATS_SEED,
    progress: StatsProgress | None = None,
) -> KeyStats:
    """Stream the generator up to the layer over sample numbers and sum k k^T in float64.

    Under torchrun each rank takes a share of the samples and the sums are all-reduced. Keys
    are computed in fixed-size batches and the kept subsample is chosen per sample number, so
    the result does not depend on how the samples were split.
    """
    numbers = share(range(samples))
    per_sample = max(1, -(-KEY_SAMPLE_SIZE // samples))
    device = generator.device
    total = torch.zeros(spec.key_channels, spec.key_channels, dtype=torch.float64, device=device)
    kept, count = [], 0
    for done, (chunk, size) in enumerate(fixed_batches(generator.latents(numbers, seed))):
        keys = read_layer(generator, spec, chunk, truncation).keys[:size]
        flat = keys.permute(0, 2, 3, 1).reshape(size, -1, spec.key_channels)
        vectors = flat.reshape(-1, spec.key_channels).double()
        total += vectors.T @ vectors
        count += vectors.shape[0]
        first = done * RENDER_BATCH
        for row, number in enumerate(numbers[first : first + size]):
            chooser = torch.Generator().manual_seed(seed * 1_000_003 + number)
            chosen = torch.randint(flat.shape[1], (per_sample,), generator=chooser, device="cpu")
            kept.append(flat[row, chosen.to(device)])
        if progress:
            progress(min(first + size, len(numbers)), len(numbers))
    total = sum_over_ranks(total)
    count = int(sum_over_ranks(torch.tensor([count], dtype=torch.float64, device=device)).item())
    empty = torch.zeros(0, spec.key_channels, device=device)
    key_sample = concat_over_ranks(torch.cat(kept) if kept else empty)[:KEY_SAMPLE_SIZE]
    meta = stats_identity(generator, spec, truncation, samples, seed)
    return KeyStats(total / count, key_sample.float().contiguous(), count, meta)


def default_cache_dir() -> Path:
    """Where statistics are cached: $REWRITING_CACHE, else ~/.cache/rewriting."""
    return Path(os.environ.get("REWRITING_CACHE", Path.home() / ".cache" / "rewriting")) / "stats"


def cache_file(
    generator: Generator, spec: LayerSpec, truncation: float | None, samples: int, seed: int,
    cache_dir: Path | None,
) -> tuple[dict[str, str], Path]:
    """These statistics' identity, and the cache file that holds them."""
    meta = stats_identity(generator, spec, truncation, samples, seed)
    return meta, cache_path(cache_dir or default_cache_dir(), meta)


def cache_path(cache_dir: Path, meta: dict[str, str]) -> Path:
    """One file per identity; its metadata, not its name, decides whether it is reused."""
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    suffix = f"-{digest}.safetensors"
    safe = fit_name(safe_name(f"{meta['model']}-{meta['layer']}"), MAX_NAME_BYTES - len(suffix))
    return cache_dir / f"{safe}{suffix}"


def stats_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """sha256 over the tensors and every metadata entry but this digest (the count included)."""
    fields = json.dumps({k: v for k, v in metadata.items() if k != "sha256"}, sort_keys=True)
    return hashlib.sha256(f"{state_digest(tensors)}\0{fields}".encode()).hexdigest()


def load_cached(path: Path, meta: dict[str, str], channels: int) -> KeyStats | None:
    """The statistics cached at `path`, or None unless it reads, its metadata matches `meta`
    exactly, its checksum holds and its tensors are sound for a layer of `channels` keys."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a link to a file (the Hub's) is read
            return None  # never opened: a FIFO would block, a folder or device is no cache
        with safe_open(path, "pt") as cached:
            stored = cached.metadata() or {}
            tensors = {name: cached.get_tensor(name) for name in cached.keys()}
    except (FileNotFoundError, SafetensorError, OSError, ValueError, RuntimeError):
        return None
    if any(stored.get(key) != value for key, value in meta.items()):
        return None
    if set(tensors) != {"second_moment", "key_sample"}:
        return None
    if stored.get("sha256") != stats_digest(tensors, stored):
        return None
    moment, sample = tensors["second_moment"], tensors["key_sample"]
    count = stored.get("count", "")
    sound = (
        count.isdigit() and int(count) > 0 and int(count) % int(meta["samples"]) == 0
        and moment.dtype == torch.float64 and moment.shape == (channels, channels)
        and sample.dim() == 2 and sample.shape[1] == channels and sample.shape[0] > 0
        and bool(moment.isfinite().all()) and bool(sample.isfinite().all())
        and bool((torch.diagonal(moment) >= 0).all()) and float(moment.trace()) > 0
    )
    return KeyStats(moment, sample, int(count), meta) if sound else None


def save_atomic(path: Path, stats: KeyStats) -> None:
    """Write the statistics and their checksum so that a reader never sees a half-written file."""
    tensors = {"second_moment": stats.second_moment.cpu(), "key_sample": stats.key_sample.cpu()}
    metadata = {**stats.meta, "count": str(stats.count)}
    metadata["sha256"] = stats_digest(tensors, metadata)
    write_atomically(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def key_stats(
    generator: Generator,
    spec: LayerSpec,
    truncation: float | None = None,
    samples: int = 1000,
    seed: int = STATS_SEED,
    cache_dir: Path | None = None,
    progress: StatsProgress | None = None,
) -> KeyStats:
    """C for a layer on the generator's device: from the cache when every identifying key
    matches, else computed (after checking that the cache can keep it)."""
    meta, path = cache_file(generator, spec, truncation, samples, seed, cache_dir)
    cached = load_cached(path, meta, spec.key_channels)
    if cached is not None:
        return cached.to(generator.device)
    check_cache(path)
    stats = compute_key_stats(generator, spec, truncation, samples, seed, progress=progress)
    if is_main():
        remove_stale_safetensors_temporaries(path.parent)
        save_atomic(path, stats)
    return stats


def check_cache(path: Path) -> None:
    """Refuse, with one line, a cache file `path` that could not be written."""
    try:
        check_output(path)
    except RewritingError as err:
        raise RewritingError(f"the statistics cache cannot keep new statistics ({err}): remove "
                             "what is in the way or set REWRITING_CACHE to another folder"
                             ) from None


def cached_key_stats(
    generator: Generator,
    spec: LayerSpec,
    truncation: float | None = None,
    samples: int = 1000,
    seed: int = STATS_SEED,
    cache_dir: Path | None = None,
) -> KeyStats | None:
    """C for a layer from the cache (on the generator's device) when every identifying key
    matches, else None."""
    meta, path = cache_file(generator, spec, truncation, samples, seed, cache_dir)
    cached = load_cached(path, meta, spec.key_channels)
    return None if cached is None else cached.to(generator.device)
