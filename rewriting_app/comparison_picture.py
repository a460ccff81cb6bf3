"""The page's before/after picture of an edit: a few samples large, each row named above it.

Made for a narrow side column (about 500 px): at most COLUMNS samples side by side, each
enlarged to at least CELL_PX (a 64-px face at 128 px) and shrunk to at most MAX_CELL_PX, and a
band of readable text above every row. The command line keeps `rewriting.editdir`'s picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Samples shown side by side.
COLUMNS = 4
#: The smallest side of one sample in the picture (small models are enlarged to it).
CELL_PX = 128
#: The largest side of one sample in the picture (large models are shrunk to it).
MAX_CELL_PX = 256
#: Pixel size of the row labels.
FONT_PX = 16
#: Space between samples, and the label band's height.
GAP, BAND = 4, FONT_PX + 10
#: Label text and band colours, and the background.
TEXT, BAND_COLOR, BACKGROUND = (20, 20, 20), (236, 236, 240), (255, 255, 255)


def cell_side(side: int) -> int:
    """The side a sample of `side` px takes: an integer enlargement to at least CELL_PX, or
    shrunk to MAX_CELL_PX."""
    return MAX_CELL_PX if side > MAX_CELL_PX else side * math.ceil(CELL_PX / side)


def labelled_rows(rows: Sequence[tuple[str, np.ndarray]]) -> Image.Image:
    """Rows (label, uint8 images [N, H, W, 3]) as one picture: each row's label on a light band
    above its samples (at most COLUMNS of them)."""
    height, width = rows[0][1].shape[1:3]
    scale = cell_side(max(height, width)) / max(height, width)
    cell_h, cell_w = round(height * scale), round(width * scale)
    columns = min(COLUMNS, max(len(images) for _, images in rows))
    row_h, font = BAND + cell_h + GAP, ImageFont.load_default(size=FONT_PX)
    labels_w = max(math.ceil(font.getlength(label)) for label, _ in rows) + 3 * GAP
    width = max(columns * (cell_w + GAP) + GAP, labels_w)
    canvas = Image.new("RGB", (width, len(rows) * row_h), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for r, (label, images) in enumerate(rows):
        top = r * row_h
        draw.rectangle((0, top, canvas.width, top + BAND - 1), fill=BAND_COLOR)
        draw.text((GAP + 2, top + BAND // 2), label, fill=TEXT, font=font, anchor="lm")
        for c, image in enumerate(images[:COLUMNS]):
            tile = Image.fromarray(np.asarray(image)).resize((cell_w, cell_h), resample(scale))
            canvas.paste(tile, (GAP + c * (cell_w + GAP), top + BAND))
    return canvas


def resample(scale: float) -> Image.Resampling:
    """Pixels kept sharp when enlarged, averaged when shrunk."""
    return Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
