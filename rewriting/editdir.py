"""The folder an edit is written to (and published from): delta, request, picture, metrics."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image

from .atomic import temporary_name
from .delta import Delta
from .generator import Generator
from .render import grid, render

DELTA_FILE = "delta.safetensors"
REQUEST_FILE = "request.json"
PICTURE_FILE = "before_after.png"
METRICS_FILE = "metrics.json"


def before_after(
    generator: Generator,
    numbers: Sequence[int],
    truncation: float | None,
    before: Mapping[str, torch.Tensor],
    after: Mapping[str, torch.Tensor],
    scale: int = 2,
) -> Image.Image:
    """Samples rendered before (top row) and after (middle row) an edit, and the change x4."""
    original = render(generator, numbers, truncation, before)
    changed = render(generator, numbers, truncation, after)
    difference = ((changed.float() - original.float()).abs() * 4).clamp(0, 255).to(torch.uint8)
    return grid([original, changed, difference], ["original", "edited", "change x4"], scale)


def write_edit_dir(
    out: Path, delta: Delta, request: dict, picture: Image.Image, metrics: dict
) -> None:
    """Write the four files into `out` all at once (staged beside it, then moved in)."""
    staging = temporary_name(out)
    staging.mkdir()
    try:
        delta.save(staging / DELTA_FILE)
        (staging / REQUEST_FILE).write_text(json.dumps(request, indent=2) + "\n")
        picture.save(staging / PICTURE_FILE)
        (staging / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
        out.mkdir(exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
