"""Layer readings of the unedited model, kept in memory: they depend only on model and layer.

A cached reading is shared by every caller and thread, so its tensors are never modified:
callers index, clone or read them. The cache holds at most `KEPT_BYTES` of tensors and drops
the least recently used readings first.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence

import torch

from .features import LayerReading, read_layer
from .generator import Generator, LayerSpec

#: Bytes of base-model readings kept (the 64 px DCGAN's rule samples: 4 to 70 MiB a layer).
KEPT_BYTES = 768 * 2**20

_kept: OrderedDict[tuple, tuple[LayerReading, ...]] = OrderedDict()
_lock = threading.Lock()


def reading_bytes(readings: Sequence[LayerReading]) -> int:
    """Bytes held by the readings' tensors (keys, values and tensor inputs)."""
    tensors = [t for r in readings for t in (r.keys, r.values, *r.inputs)
               if isinstance(t, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors)


def base_readings(
    generator: Generator,
    spec: LayerSpec,
    batches: Sequence[Sequence[int]],
    truncation: float | None,
    seed: int,
) -> tuple[LayerReading, ...]:
    """The unedited layer read on each batch of sample numbers of latent stream `seed`: from
    memory when the same model, layer, truncation and batches were read before (never modify)."""
    key = (generator.name, generator.weights_sha256, spec.name, json.dumps(truncation), seed,
           tuple(map(tuple, batches)))
    with _lock:
        found = _kept.get(key)
        if found is not None:
            _kept.move_to_end(key)
            return found
    found = tuple(read_layer(generator, spec, generator.latents(numbers, seed), truncation)
                  for numbers in batches)
    size = reading_bytes(found)
    if size <= KEPT_BYTES:
        with _lock:
            _kept[key] = found
            while sum(reading_bytes(r) for r in _kept.values()) > KEPT_BYTES:
                _kept.popitem(last=False)
    return found


def clear() -> None:
    """Forget every kept reading."""
    with _lock:
        _kept.clear()
