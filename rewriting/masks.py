"""Masks: boxes or painted PNG data URLs in image pixels, brought to a layer's grid.

Two rules bring a mask to a grid: `coverage` (the fraction of each cell that is painted) and
`paper` (the authors' rule: an 8-bit bilinear resize of the mask, at its saved resolution, to
the grid, which also marks cells next to the brush).
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import struct
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .errors import RewritingError
from .limits import MAX_MASK_PIXELS

MaskSpec = Sequence[int] | str


def _decode_png(url: str) -> Image.Image:
    """The PNG of a data URL, decoded only when it has at most MAX_MASK_PIXELS pixels."""
    if not url.startswith("data:image/") or ";base64," not in url:
        raise RewritingError("a mask must be a box [top, left, bottom, right] or a PNG data URL")
    too_big = RewritingError(f"the mask image has more than {MAX_MASK_PIXELS} pixels")
    try:
        data = base64.b64decode(url.split(",", 1)[1], validate=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["PNG"])
            if image.width * image.height > MAX_MASK_PIXELS:
                raise too_big
            image.load()
    except RewritingError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_big from None
    except (binascii.Error, UnidentifiedImageError, ValueError):
        raise RewritingError("the mask's data URL does not hold a readable PNG image") from None
    except (OSError, SyntaxError, EOFError, struct.error):
        raise RewritingError("the mask's PNG image is truncated or corrupt") from None
    return image


def painted(image: Image.Image, paper: bool = False) -> np.ndarray:
    """Paint coverage in [0, 1] of a mask image.

    Ours: painted where alpha is non-zero, or where the pixel is not black when there is no
    alpha. The paper's files: the red channel after dropping alpha.
    """
    if paper:
        return np.asarray(image.convert("RGBA"))[..., 0].astype(np.float32) / 255.0
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        return (np.asarray(image.convert("RGBA"))[..., 3] > 0).astype(np.float32)
    return (np.asarray(image.convert("RGB")).max(axis=-1) > 0).astype(np.float32)


GRID_RULES = ("coverage", "paper")


def _saved_mask(spec: MaskSpec, image_size: tuple[int, int], paper: bool) -> torch.Tensor:
    """The mask [h, w] in [0, 1] at the resolution it was given in (a box: the image's)."""
    height, width = image_size
    if isinstance(spec, str):
        mask = torch.from_numpy(painted(_decode_png(spec), paper))
    else:
        if (
            not isinstance(spec, (list, tuple))
            or len(spec) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in spec)
        ):
            raise RewritingError(
                f"a box mask is four integers [top, left, bottom, right], got {spec!r}"
            )
        top, left, bottom, right = spec
        if not (0 <= top < bottom <= height and 0 <= left < right <= width):
            raise RewritingError(
                f"box {list(spec)} is empty or lies outside the {height}x{width} image "
                "(need 0 <= top < bottom <= height and 0 <= left < right <= width)"
            )
        mask = torch.zeros(image_size, device="cpu")
        mask[top:bottom, left:right] = 1.0
    if float(mask.max()) <= 0.0:
        raise RewritingError("the mask is empty: nothing is painted")
    return mask


def mask_image(spec: MaskSpec, image_size: tuple[int, int], paper: bool = False) -> torch.Tensor:
    """The mask as coverage [H, W] in [0, 1] at the image's resolution, on the CPU; empty or
    outside: error."""
    if isinstance(spec, str):
        return torch.from_numpy(_painted_image(spec, tuple(image_size), paper).copy())
    return _at_size(_saved_mask(spec, image_size, paper), image_size)


@functools.lru_cache(maxsize=512)
def _painted_image(url: str, image_size: tuple[int, int], paper: bool) -> np.ndarray:
    """`mask_image` of a painted mask, decoded and resized once per URL (read-only)."""
    coverage = _at_size(_saved_mask(url, image_size, paper), image_size).numpy()
    coverage.setflags(write=False)
    return coverage


def _at_size(mask: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """A mask [h, w] resized to the image's size (bilinear, antialiased)."""
    if tuple(mask.shape) != tuple(image_size):
        mask = F.interpolate(mask[None, None], size=image_size, mode="bilinear", antialias=True)
        mask = mask[0, 0].clamp(0, 1)
    return mask


def to_grid(mask: torch.Tensor, grid: tuple[int, int], margin: int = 0) -> torch.Tensor:
    """Average a mask [H, W] over the cells of a feature grid: soft coverage per cell.

    The image covers the grid less `margin` cells on each side (which get no coverage).
    """
    inner = (grid[0] - 2 * margin, grid[1] - 2 * margin)
    cover = F.adaptive_avg_pool2d(mask[None, None].float(), inner)[0, 0]
    return F.pad(cover, [margin] * 4) if margin else cover


def paper_grid(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The authors' rule: the mask as an 8-bit image, bilinearly resized (PIL) to the grid."""
    pixels = (mask.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    small = Image.fromarray(pixels).resize(
        (grid[1], grid[0]), resample=Image.Resampling.BILINEAR
    )
    return torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0)


def grid_mask(
    spec: MaskSpec,
    image_size: tuple[int, int],
    grid: tuple[int, int],
    paper: bool = False,
    rule: str = "coverage",
    margin: int = 0,
) -> torch.Tensor:
    """A selection's mask on a feature grid [h, w] by `rule` (see the module docstring); the
    image covers the grid less `margin` cells on each side."""
    if rule == "paper":
        inner = (grid[0] - 2 * margin, grid[1] - 2 * margin)
        cells = paper_grid(_saved_mask(spec, image_size, paper), inner)
        if float(cells.max()) <= 0.0:
            raise RewritingError("the mask covers no cell of the layer's grid")
        return F.pad(cells, [margin] * 4) if margin else cells
    if rule != "coverage":
        raise RewritingError(f"grid must be one of {', '.join(GRID_RULES)}, got {rule!r}")
    return to_grid(mask_image(spec, image_size, paper), grid, margin)


def bounding_box(mask: torch.Tensor, stride: int = 1, threshold: float = 0.0) -> tuple[int, ...]:
    """Box (top, left, bottom, right) around cells above `threshold`, widened to `stride` steps."""
    rows = torch.nonzero(mask.amax(dim=1) > threshold).flatten()
    cols = torch.nonzero(mask.amax(dim=0) > threshold).flatten()
    if len(rows) == 0:
        raise RewritingError("the mask covers no cell of the layer's grid")
    top, left = int(rows[0]) // stride * stride, int(cols[0]) // stride * stride
    bottom = -(-(int(rows[-1]) + 1) // stride) * stride
    right = -(-(int(cols[-1]) + 1) // stride) * stride
    return top, left, min(bottom, mask.shape[0]), min(right, mask.shape[1])
