"""The grid of samples a visitor paints on directly: one brush, its mode (copy, paste, context).

Gradio's ImageEditor redraws slowly and loops when its value is replaced in answer to its own
strokes, so the grid is a small `gr.HTML` component: each cell is a sample picture with the
session's selections drawn over it, and a transparent canvas where the live stroke is drawn in
the browser. A finished stroke goes to the server as the component's value (the cells and a
`stroke`: the sample and its points); the server keeps it as a selection and answers with the
cells redrawn. Everything in a stroke is checked: it comes from the visitor's browser.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from rewriting.errors import RewritingError
from rewriting.masks import mask_image
from rewriting.request import Selection

from . import session as ss
from .file_cache import image_file
from .pictures import enlarge, mask_url, tint

#: The brush's modes: what a stroke marks, in the visitor's words, and its colour.
MODES = {
    "copy": ("1 · What to copy", (40, 140, 255)),
    "paste": ("2 · Where it goes", (30, 200, 90)),
    "context": ("3 · Where the rule applies", (255, 0, 200)),
}
#: The next mode after a stroke in a mode (copy, then paste, then context).
NEXT_MODE = {"copy": "paste", "paste": "context", "context": "context"}
#: The brush radius, in cell pixels (cells are drawn at `CELL_PX` or the image's size).
BRUSH_RADIUS = 10
CELL_PX = 256
#: What one stroke may carry: points, and bytes of the whole value.
MAX_POINTS = 4000
MAX_VALUE_BYTES = 256_000

TEMPLATE = (
    '<div class="paint-grid">${JSON.parse(value || \'{"cells": []}\').cells.map(c => '
    '`<div class="cell" data-n="${c.n}" data-w="${c.w}" data-h="${c.h}">'
    '<img src="${c.src}" alt="sample ${c.n}" draggable="false">'
    '<canvas width="${c.w}" height="${c.h}"></canvas>'
    '<span class="cell-label">${c.label}</span></div>`).join("")}</div>'
)

CSS_TEMPLATE = """
.paint-grid { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 6px; }
.cell { position: relative; aspect-ratio: 1; touch-action: none; cursor: crosshair;
        border-radius: 4px; overflow: hidden; background: #ddd; }
.cell img, .cell canvas { position: absolute; inset: 0; width: 100%; height: 100%;
        image-rendering: pixelated; user-select: none; }
.cell-label { position: absolute; left: 4px; top: 4px; padding: 0 5px; border-radius: 3px;
        background: rgba(0, 0, 0, 0.55); color: #fff; font-size: 13px; pointer-events: none; }
@media (max-width: 640px) { .paint-grid { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
"""

#: The browser's side: draw the live stroke, then send it (sample, points) as the value.
SCRIPT = """
let stroke = null;
const radius = RADIUS;
const at = (event, cell) => {
  const box = cell.getBoundingClientRect();
  return [Math.round((event.clientX - box.left) * cell.dataset.w / box.width),
          Math.round((event.clientY - box.top) * cell.dataset.h / box.height)];
};
const dot = (point) => {
  const pen = stroke.canvas.getContext('2d');
  pen.fillStyle = 'rgba(255, 255, 255, 0.6)';
  pen.beginPath(); pen.arc(point[0], point[1], radius, 0, 2 * Math.PI); pen.fill();
};
element.addEventListener('pointerdown', (event) => {
  const cell = event.target.closest('.cell');
  if (!cell) return;
  event.preventDefault();
  cell.setPointerCapture?.(event.pointerId);
  stroke = {cell, canvas: cell.querySelector('canvas'), points: [at(event, cell)]};
  dot(stroke.points[0]);
});
element.addEventListener('pointermove', (event) => {
  if (!stroke) return;
  const point = at(event, stroke.cell);
  stroke.points.push(point); dot(point);
});
const finish = () => {
  if (!stroke) return;
  const value = JSON.parse(props.value || '{"cells": []}');
  value.stroke = {sample: stroke.cell.dataset.n, points: stroke.points.slice(0, MOST)};
  stroke = null;
  props.value = JSON.stringify(value);
  trigger('input');
};
element.addEventListener('pointerup', finish);
element.addEventListener('pointercancel', finish);
// The server's answer draws the kept selections: the live strokes go then.
watch('value', () => {
  if (JSON.parse(props.value || '{}').stroke) return;
  element.querySelectorAll('canvas').forEach(
    (c) => c.getContext('2d').clearRect(0, 0, c.width, c.height));
});
""".replace("RADIUS", str(BRUSH_RADIUS)).replace("MOST", str(MAX_POINTS))


@dataclass(frozen=True)
class Stroke:
    """A finished stroke: the sample painted and its points in the cell's pixels."""

    sample: int
    points: np.ndarray


def cell_size(session: ss.Session) -> tuple[int, int]:
    """A cell's pixels: the model's image enlarged by a whole factor to at least `CELL_PX`."""
    height, width = session.generator.image_size
    factor = max(1, math.ceil(CELL_PX / max(height, width)))
    return height * factor, width * factor


def cell_picture(session: ss.Session, image: np.ndarray, sample: int) -> np.ndarray:
    """A sample enlarged to a cell, with the session's selections on it tinted by role."""
    picture = enlarge(image, CELL_PX)
    for role, selection in roles(session, sample):
        cover = selection_cover(selection, session, picture.shape[:2])
        picture = tint(picture, cover, 0.5, MODES[role][1])
    return picture


def roles(session: ss.Session, sample: int) -> list[tuple[str, Selection]]:
    """The session's selections on `sample`, each with its role."""
    found = [("context", s) for s in session.context if s.sample == sample]
    found += [(role, s) for role, s in (("copy", session.copy), ("paste", session.paste))
              if s is not None and s.sample == sample]
    return found


def selection_cover(selection: Selection, session: ss.Session,
                    size: tuple[int, int]) -> np.ndarray:
    """A selection's mask as a boolean map of `size` (a cell's pixels)."""
    cover = mask_image(selection.mask, session.generator.image_size, selection.paper).numpy()
    rows = (np.arange(size[0]) * cover.shape[0]) // size[0]
    cols = (np.arange(size[1]) * cover.shape[1]) // size[1]
    return cover[rows][:, cols] > 0.5


def grid_value(session: ss.Session, numbers: Sequence[int], images: np.ndarray) -> str:
    """The grid's value: one cell per sample, its picture (selections drawn) and its label."""
    cells = []
    for n, image in zip(numbers, images, strict=True):
        picture = cell_picture(session, image, n)
        marks = sorted({MODES[role][0].split(" · ")[1].lower() for role, _ in roles(session, n)})
        cells.append({"n": n, "src": "gradio_api/file=" + image_file(picture),
                      "w": picture.shape[1], "h": picture.shape[0],
                      "label": f"#{n}" + "".join(f" · {m}" for m in marks)})
    return json.dumps({"cells": cells})


def read_stroke(value: object, numbers: Sequence[int]) -> Stroke:
    """The stroke in a grid value from the browser, on one of the samples shown (`numbers`);
    anything else is refused in one line."""
    if not isinstance(value, str) or len(value) > MAX_VALUE_BYTES:
        raise RewritingError("the stroke could not be read: paint it again")
    try:
        data = json.loads(value)
        stroke = data["stroke"]
        sample = int(stroke["sample"])
        points = np.asarray(stroke["points"], dtype=np.float64)
    except (ValueError, TypeError, KeyError):
        raise RewritingError("the stroke could not be read: paint it again") from None
    if sample not in numbers:
        raise RewritingError("that sample is no longer shown: paint on one of the samples here")
    if points.ndim != 2 or points.shape[1] != 2 or not 0 < len(points) <= MAX_POINTS \
            or not np.isfinite(points).all():
        raise RewritingError("the stroke could not be read: paint it again")
    return Stroke(sample, points)


def stroke_mask(stroke: Stroke, size: tuple[int, int], radius: int = BRUSH_RADIUS) -> np.ndarray:
    """The pixels of a cell of `size` a stroke covers: a disc at each point and along each
    segment between two points."""
    height, width = size
    points = np.clip(stroke.points, [0, 0], [width - 1, height - 1])
    steps = [points[:1]]
    for start, end in zip(points[:-1], points[1:], strict=True):
        count = max(1, int(np.ceil(np.hypot(*(end - start)) / (radius / 2))))
        steps.append(start + (end - start) * np.linspace(0, 1, count + 1)[1:, None])
    disc = np.add.outer(np.arange(-radius, radius + 1) ** 2,
                        np.arange(-radius, radius + 1) ** 2) <= radius**2
    padded = np.zeros((height + 2 * radius, width + 2 * radius), bool)
    for x, y in np.concatenate(steps).round().astype(int):
        padded[y : y + 2 * radius + 1, x : x + 2 * radius + 1] |= disc
    return padded[radius : radius + height, radius : radius + width]


def with_stroke(session: ss.Session, stroke: Stroke, mode: str) -> ss.Session:
    """The session with a stroke kept in its mode: it replaces the copy or the paste, or joins
    the context on its sample."""
    if mode not in MODES:
        raise RewritingError(f"the brush mode must be one of {', '.join(MODES)}")
    size = cell_size(session)
    mask = stroke_mask(stroke, size)
    if mode != "context":
        return session.with_selection(mode, Selection(stroke.sample, mask_url(mask)))
    kept = [s for s in session.context if s.sample == stroke.sample]
    for earlier in kept:
        mask |= selection_cover(earlier, session, size)
    others = tuple(s for s in session.context if s.sample != stroke.sample)
    joined = Selection(stroke.sample, mask_url(mask))
    session.check(joined)
    return replace(session, context=(*others, joined))
