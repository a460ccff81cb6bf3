"""Render samples by number, batch-independently, and lay them out as pictures."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from .generator import Generator

#: Every forward pass runs on exactly this many latents (padding the last chunk), so sample N
#: goes through the same kernels whatever batch it is asked in.
RENDER_BATCH = 16


def fixed_batches(z: torch.Tensor) -> Iterator[tuple[torch.Tensor, int]]:
    """Chunks of exactly RENDER_BATCH latents (the last padded) and how many are real."""
    for start in range(0, len(z), RENDER_BATCH):
        chunk = z[start : start + RENDER_BATCH]
        size = len(chunk)
        if size < RENDER_BATCH:
            chunk = torch.cat([chunk, chunk[-1:].expand(RENDER_BATCH - size, *chunk.shape[1:])])
        yield chunk, size


def render(
    generator: Generator,
    numbers: Sequence[int],
    truncation: float | None = None,
    weights: Mapping[str, torch.Tensor] | None = None,
    seed: int = 1,
    net: nn.Module | None = None,
) -> torch.Tensor:
    """uint8 images [N, H, W, 3] of the given sample numbers, through `net` (a view) if given."""
    return render_z(generator, generator.latents(numbers, seed), truncation, weights, net)


def render_z(
    generator: Generator,
    z: torch.Tensor,
    truncation: float | None = None,
    weights: Mapping[str, torch.Tensor] | None = None,
    net: nn.Module | None = None,
) -> torch.Tensor:
    """uint8 images [N, H, W, 3] of latents `z`, batch-independently (`render`)."""
    chunks = []
    if net is None:
        net = generator.view(weights) if weights else generator.net
    for chunk, size in fixed_batches(z):
        raw = generator.synthesize(chunk, truncation, net=net)[:size]
        chunks.append(generator.to_image(raw))
    if not chunks:
        return torch.zeros(0, *generator.image_size, 3, dtype=torch.uint8)
    return torch.cat(chunks)


def grid(
    rows: Sequence[torch.Tensor],
    labels: Sequence[str] = (),
    scale: int = 1,
    gap: int = 2,
) -> Image.Image:
    """Rows of uint8 images [N, H, W, 3] as one picture, each row with an optional left label."""
    height, width = rows[0].shape[1:3]
    cols = max(len(row) for row in rows)
    label_w = 80 if labels else 0
    cell_h, cell_w = height * scale, width * scale
    canvas = Image.new(
        "RGB",
        (label_w + cols * (cell_w + gap) + gap, len(rows) * (cell_h + gap) + gap),
        "white",
    )
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        y = gap + r * (cell_h + gap)
        if r < len(labels):
            draw.text((6, y + cell_h // 2 - 6), labels[r], fill="black")
        for c, image in enumerate(row):
            tile = Image.fromarray(np.asarray(image)).resize((cell_w, cell_h), Image.NEAREST)
            canvas.paste(tile, (label_w + gap + c * (cell_w + gap), y))
    return canvas
