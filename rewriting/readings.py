"""Layer readings and traced renders of the unedited model, kept in memory: they depend only on
model, device and layer.

A kept reading is shared by every caller and thread, so its tensors are never modified:
callers index, clone or read them. The cache holds at most `KEPT_BYTES` of tensors and drops
the least recently used readings first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import torch

from .features import LayerReading, read_layer
from .generator import Generator, LayerSpec
from .lru import BytesLRU
from .render import Midway, midway, render_resumed

#: Bytes of base-model readings kept (the 64 px DCGAN's rule samples: 4 to 70 MiB a layer).
KEPT_BYTES = 768 * 2**20


def _tensors(kept: LayerReading | Midway | torch.Tensor) -> tuple:
    """The tensors one kept object holds."""
    if isinstance(kept, torch.Tensor):
        return (kept,)
    if isinstance(kept, Midway):
        return tuple(t for inputs, output, _ in kept.batches for t in (*inputs, output))
    return (kept.keys, kept.values, *kept.inputs)


def _bytes(kept: Sequence[LayerReading | Midway | torch.Tensor]) -> int:
    """Bytes held by kept readings (keys, values and tensor inputs), midways or tensors."""
    return sum(t.numel() * t.element_size() for r in kept for t in _tensors(r)
               if isinstance(t, torch.Tensor))


_kept = BytesLRU(KEPT_BYTES, _bytes)


def _remembered(key: tuple, compute: Callable[[], tuple]) -> tuple:
    """What `compute` returns for `key`: from memory, or computed and kept."""
    found = _kept.get(key)
    if found is None:
        found = compute()
        _kept.put(key, found)
    return found


def base_readings(
    generator: Generator,
    spec: LayerSpec,
    batches: Sequence[Sequence[int]],
    truncation: float | None,
    seed: int,
) -> tuple[LayerReading, ...]:
    """The unedited layer read on each batch of sample numbers of latent stream `seed`: from
    memory when the same model, layer, truncation and batches were read before (never modify)."""
    key = ("reading", generator.name, generator.weights_sha256, str(generator.device), spec.name,
           json.dumps(truncation), seed, tuple(map(tuple, batches)))
    return _remembered(key, lambda: tuple(
        read_layer(generator, spec, generator.latents(numbers, seed), truncation)
        for numbers in batches))


def base_midway(
    generator: Generator, module: str, numbers: Sequence[int], truncation: float | None
) -> Midway:
    """`midway` of the unedited model on sample numbers, from memory when run before (never
    modify)."""
    key = ("midway", generator.name, generator.weights_sha256, str(generator.device), module,
           json.dumps(truncation), tuple(numbers))
    return _remembered(key, lambda: (midway(generator, generator.latents(numbers), module,
                                            truncation),))[0]


def base_traced(
    generator: Generator, module: str, numbers: Sequence[int], truncation: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """`render_traced` of the unedited model on sample numbers: images and the output of
    `net.<module>`, from memory when rendered before (never modify)."""
    key = ("traced", generator.name, generator.weights_sha256, str(generator.device), module,
           json.dumps(truncation), tuple(numbers))
    return _remembered(key, lambda: render_resumed(
        generator, base_midway(generator, module, numbers, truncation), {}))


def clear() -> None:
    """Forget every kept reading."""
    _kept.clear()
