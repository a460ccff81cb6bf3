"""Picture helpers of the page: brush masks painted on a canvas, enlarged samples, tinted masks."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from rewriting.errors import RewritingError

#: Tint of brush masks and context matches drawn over samples.
MASK_COLOR = (255, 0, 200)


def brush_mask(layers: Sequence[np.ndarray]) -> np.ndarray:
    """Where any brush layer of an RGBA canvas is painted (alpha > 0), as a boolean map."""
    painted = [np.asarray(layer)[..., 3] > 0 for layer in layers if np.asarray(layer).ndim == 3]
    if not painted or not np.any(painted):
        raise RewritingError("nothing is painted: brush over the sample in the canvas first")
    return np.logical_or.reduce(painted)


def mask_url(mask: np.ndarray) -> str:
    """A boolean map as a PNG data URL: white, opaque where painted, transparent elsewhere."""
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask] = 255
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def enlarge(image: np.ndarray, at_least: int) -> np.ndarray:
    """Upscale an image [H, W, C] by an integer factor (nearest) to at least `at_least` px."""
    factor = max(1, math.ceil(at_least / max(image.shape[:2])))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def tint(
    images: np.ndarray, masks: np.ndarray | torch.Tensor, strength: float = 0.6,
    color: tuple[int, int, int] = MASK_COLOR,
) -> np.ndarray:
    """Images [..., H, W, 3] with coverage `masks` [..., H, W] blended towards `color`."""
    alpha = np.asarray(masks, dtype=np.float32)[..., None] * strength
    mixed = images.astype(np.float32) * (1 - alpha) + np.array(color) * alpha
    return mixed.round().astype(np.uint8)
