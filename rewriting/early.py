"""Early key statistics for a first edit: a few hundred samples shrunk towards their diagonal,
replaced by the full statistics once a background thread has computed them.

C_early = (1 - a) C_n + a diag(C_n), where C_n is the second moment over the first n samples
and a the shrinkage (EARLY_SHRINKAGE by default): the off-diagonal terms, the noisiest part of
an estimate from few images, are damped by a, the per-channel energies kept as they are.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import torch

from .generator import Generator, LayerSpec
from .stats import (
    STATS_SEED,
    KeyStats,
    StatsProgress,
    cache_file,
    cached_key_stats,
    check_cache,
    key_stats,
)

#: Samples of the early statistics.
EARLY_SAMPLES = 200
#: The weight a of diag(C_n) in C_early.
EARLY_SHRINKAGE = 0.1
#: The niceness of the background refinement's thread.
REFINE_NICENESS = 19


def shrink(stats: KeyStats, shrinkage: float) -> KeyStats:
    """C_early = (1 - a) C_n + a diag(C_n) for a = `shrinkage`; its metadata records a."""
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be between 0 and 1, got {shrinkage}")
    moment = stats.second_moment
    shrunk = (1 - shrinkage) * moment + shrinkage * torch.diag(torch.diagonal(moment))
    meta = {**stats.meta, "shrinkage": repr(shrinkage)}
    return KeyStats(shrunk, stats.key_sample, stats.count, meta)


def early_key_stats(
    generator: Generator,
    spec: LayerSpec,
    truncation: float | None = None,
    samples: int = EARLY_SAMPLES,
    shrinkage: float = EARLY_SHRINKAGE,
    seed: int = STATS_SEED,
    cache_dir: Path | None = None,
    progress: StatsProgress | None = None,
) -> KeyStats:
    """C_early over `samples` samples (C_n cached like any statistics), shrunk by `shrinkage`."""
    raw = key_stats(generator, spec, truncation, samples, seed, cache_dir, progress)
    return shrink(raw, shrinkage)


def lower_priority() -> None:
    """Give the calling thread (on Linux, where niceness is per thread) the lowest CPU priority,
    so that a refinement yields the cores to the edit in the foreground."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), REFINE_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not permitted: refine at normal priority
        pass


class RefiningStats:
    """A layer's statistics: the full ones when cached, else early ones at once while a
    background thread computes the full ones (into the cache) and then swaps them in."""

    def __init__(
        self,
        generator: Generator,
        spec: LayerSpec,
        truncation: float | None = None,
        samples: int = 1000,
        early: int = EARLY_SAMPLES,
        shrinkage: float = EARLY_SHRINKAGE,
        seed: int = STATS_SEED,
        cache_dir: Path | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        full = cached_key_stats(generator, spec, truncation, samples, seed, cache_dir)
        self._thread = threading.Thread(
            target=self._refine, args=(generator, spec, truncation, samples, seed, cache_dir),
            name=f"refine-stats-{spec.name}", daemon=True,
        )
        if full is not None or early >= samples:
            self._current = full or key_stats(generator, spec, truncation, samples, seed,
                                              cache_dir)
            return
        # Refused now, not once the background thread finds that the cache cannot keep them.
        check_cache(cache_file(generator, spec, truncation, samples, seed, cache_dir)[1])
        self._current = early_key_stats(generator, spec, truncation, early, shrinkage, seed,
                                        cache_dir)
        self._thread.start()

    def _refine(self, generator: Generator, spec: LayerSpec, truncation: float | None,
                samples: int, seed: int, cache_dir: Path | None) -> None:
        lower_priority()
        try:
            full = key_stats(generator, spec, truncation, samples, seed, cache_dir)
        except BaseException as error:  # reported by wait()
            self._error = error
            return
        with self._lock:
            self._current = full

    @property
    def early(self) -> bool:
        """Whether the statistics in use are still the early ones."""
        return "shrinkage" in self.current().meta

    def current(self) -> KeyStats:
        """The best statistics so far (never half-replaced)."""
        with self._lock:
            return self._current

    def wait(self, timeout: float | None = None) -> KeyStats:
        """The full statistics once refined (re-raising what stopped the refinement)."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        return self.current()
