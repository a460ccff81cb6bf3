"""Rendered samples kept in memory, named by model, truncation, the edits and the sample number.

Visitors with the same edits (or none) share the images: a page, a canvas, a preview or a
before/after picture never renders a sample again that was rendered for the same edit stack.
Kept images are read-only; `rendered` hands out fresh arrays. At most `KEPT_BYTES` are kept,
the least recently used dropped first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np

from rewriting.checksum import state_digest
from rewriting.delta import EditStack
from rewriting.lru import BytesLRU

#: Bytes of rendered images kept (about 20 000 samples of a 64 px model).
KEPT_BYTES = 256 * 2**20

_kept = BytesLRU(KEPT_BYTES, lambda image: image.nbytes)


def stack_digest(stack: EditStack) -> str:
    """What a stack of edits renders: each edit's weight, axis, strength, Lambda and D, in order."""
    tensors = {}
    for i, delta in enumerate(stack.deltas):
        tensors[f"{i}.lambda"] = delta.lam
        tensors[f"{i}.directions"] = delta.directions
    recipe = [(d.weight, d.key_axis, float(d.strength)) for d in stack.deltas]
    return f"{state_digest(tensors)}:{json.dumps(recipe)}"


def render_identity(stack: EditStack, truncation: float | None) -> tuple:
    """What names a stack's renders among those kept: model, truncation and the edits."""
    generator = stack.generator
    return (generator.name, generator.weights_sha256, json.dumps(truncation),
            stack_digest(stack))


def rendered(
    identity: tuple, numbers: Sequence[int], render: Callable[[list[int]], np.ndarray]
) -> np.ndarray:
    """Images [N, H, W, 3] of `numbers` under `identity` (model, truncation, stack digest):
    the kept ones, and the others from one `render` call on the missing numbers."""
    if not numbers:
        return render([])
    kept = {n: _kept.get((*identity, n)) for n in numbers}
    found = {n: image for n, image in kept.items() if image is not None}
    missing = sorted({n for n in numbers if n not in found})
    if missing:
        found.update(keep(identity, missing, render(missing)))
    return np.stack([found[n] for n in numbers])


def keep(
    identity: tuple, numbers: Sequence[int], images: np.ndarray
) -> dict[int, np.ndarray]:
    """Keep read-only copies of images rendered elsewhere, dropping the least recently used
    beyond `KEPT_BYTES`; returns them by sample number."""
    copies = {}
    for n, image in zip(numbers, images, strict=True):
        copies[n] = np.array(image)
        copies[n].setflags(write=False)
        _kept.put((*identity, n), copies[n])
    return copies


def clear() -> None:
    """Forget every kept image."""
    _kept.clear()
