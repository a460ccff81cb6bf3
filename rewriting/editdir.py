"""The folder an edit is written to (and published from): delta, request, picture, metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .atomic import as_json, write_folder
from .delta import Delta
from .generator import Generator
from .render import grid, render

DELTA_FILE = "delta.safetensors"
REQUEST_FILE = "request.json"
PICTURE_FILE = "before_after.png"
METRICS_FILE = "metrics.json"
#: Every file an edit folder holds.
EDIT_FILES = (DELTA_FILE, REQUEST_FILE, PICTURE_FILE, METRICS_FILE)


def zoom(images: torch.Tensor, boxes: Sequence[tuple[int, int, int, int] | None]) -> torch.Tensor:
    """Each image [N, H, W, 3] cropped to a square around its pixel box (whole when None),
    resized to H x W."""
    height, width = images.shape[1:3]
    out = []
    for image, box in zip(images, boxes, strict=True):
        top, left, bottom, right = box or (0, 0, height, width)
        side = min(max(bottom - top, right - left), height, width)
        top = min(max((top + bottom - side) // 2, 0), height - side)
        left = min(max((left + right - side) // 2, 0), width - side)
        bottom, right = top + side, left + side
        crop = Image.fromarray(image[top:bottom, left:right].numpy())
        out.append(torch.from_numpy(np.array(crop.resize((width, height), Image.NEAREST))))
    return torch.stack(out)


def before_after(
    generator: Generator,
    numbers: Sequence[int],
    truncation: float | None,
    before: Mapping[str, torch.Tensor],
    after: Mapping[str, torch.Tensor],
    scale: int = 2,
    boxes: Sequence[tuple[int, int, int, int] | None] | None = None,
) -> Image.Image:
    """Samples rendered before (top row) and after (second row) an edit, and the change x4;
    with pixel `boxes` (where the rule applies on each sample), both zoomed on them below."""
    original = render(generator, numbers, truncation, before)
    changed = render(generator, numbers, truncation, after)
    return before_after_picture(original, changed, scale, boxes)


def before_after_picture(
    original: torch.Tensor,
    changed: torch.Tensor,
    scale: int = 2,
    boxes: Sequence[tuple[int, int, int, int] | None] | None = None,
) -> Image.Image:
    """`before_after`'s picture from images [N, H, W, 3] already rendered before and after."""
    difference = ((changed.float() - original.float()).abs() * 4).clamp(0, 255).to(torch.uint8)
    rows, labels = [original, changed, difference], ["original", "edited", "change x4"]
    if boxes is not None:
        rows += [zoom(original, boxes), zoom(changed, boxes)]
        labels += ["original,\nzoomed", "edited,\nzoomed"]
    return grid(rows, labels, scale)


def write_edit_dir(
    out: Path, delta: Delta, request: dict, picture: Image.Image, metrics: dict
) -> None:
    """Write the four files into `out` all at once (staged beside it, then moved in)."""
    write_folder(out, {
        DELTA_FILE: delta.save,
        REQUEST_FILE: as_json(request),
        # compress_level 1: fast; the file is about 20% larger
        PICTURE_FILE: lambda path: picture.save(path, format="PNG", compress_level=1),
        METRICS_FILE: as_json(metrics),
    })
