"""Render samples by number, batch-independently, and lay them out as pictures."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from .device import render_precision
from .generator import Generator
from .nethook import run_until, trace

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
    """uint8 images [N, H, W, 3] on the CPU of latents `z`, batch-independently (`render`), in
    the generator's render precision."""
    if net is None:
        net = generator.view(weights) if weights else generator.net
    with render_precision(generator.device, generator.render_dtype):
        return _passes(generator, z, truncation, net, None)[0]


def render_traced(
    generator: Generator,
    z: torch.Tensor,
    module: str,
    truncation: float | None = None,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`render_z`'s images and, from the same forward passes, the output of `net.<module>`
    [N, ...] (hooked on a private view: the shared network is never touched)."""
    return _passes(generator, z, truncation, generator.view(weights), module)


@dataclass(frozen=True)
class Midway:
    """`render_traced`'s forward passes of latents `z` under `weights`, kept from one module
    on: the module's inputs and output in each of render's fixed batches (never modified)."""

    module: str
    z: torch.Tensor
    truncation: float | None
    weights: Mapping[str, torch.Tensor]
    batches: tuple[tuple[tuple, torch.Tensor, int], ...]  # (inputs, output, real rows)


def midway(
    generator: Generator,
    z: torch.Tensor,
    module: str,
    truncation: float | None = None,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> Midway:
    """Run latents `z` as far as `net.<module>` (not at all where the family has no `tail`:
    `render_resumed` then renders from the latents)."""
    net = generator.view(weights)
    batches = []
    if generator.tail(net, module) is not None:
        for chunk, size in fixed_batches(z):
            record = run_until(lambda chunk=chunk: generator.synthesize(chunk, truncation, net=net),
                               net, module)
            batches.append((record.inputs, record.output, size))
    return Midway(module, z, truncation, dict(weights or {}), tuple(batches))


def render_resumed(
    generator: Generator, start: Midway, weights: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """`render_traced` of the midway's latents under `weights`, the same to the bit: when the
    weights differ from the midway's only in the module's own tensors, only the module and what
    follows it run."""
    changed = [name for name in {*weights, *start.weights}
               if not _same(weights.get(name), start.weights.get(name))]
    if not start.batches or any(not n.startswith(f"{start.module}.") for n in changed):
        return render_traced(generator, start.z, start.module, start.truncation, weights)
    net = generator.view(weights)
    layer, tail = net.get_submodule(start.module), generator.tail(net, start.module)
    images, outputs = [], []
    with torch.no_grad():
        for inputs, output, size in start.batches:
            output = layer(*inputs) if changed else output.clone()  # a tail may work in place
            outputs.append(output[:size].clone())
            images.append(generator.to_image(tail(output)[:size]).cpu())
    return torch.cat(images), torch.cat(outputs)


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Whether two overrides of a tensor hold the same values (None: not overridden)."""
    return a is b or (a is not None and b is not None and torch.equal(a, b))


def _passes(
    generator: Generator,
    z: torch.Tensor,
    truncation: float | None,
    net: nn.Module,
    module: str | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images of latents `z` in fixed batches, and the traced module's outputs if one is given."""
    images, outputs = [], []
    with trace(net, module) if module else nullcontext() as record:
        for chunk, size in fixed_batches(z):
            raw = generator.synthesize(chunk, truncation, net=net)[:size]
            images.append(generator.to_image(raw.float()).cpu())
            if record is not None:
                outputs.append(record.output[:size])
    if not images:
        return torch.zeros(0, *generator.image_size, 3, dtype=torch.uint8, device="cpu"), None
    return torch.cat(images), torch.cat(outputs) if outputs else None


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
