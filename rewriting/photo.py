"""A visitor's photo made ready for projection: a square crop, resized to the model's size."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from .errors import RewritingError

#: Largest photo accepted (pixels), so a decompression bomb is refused before it is decoded.
MAX_PHOTO_PIXELS = 40_000_000


@dataclass(frozen=True)
class Crop:
    """A square region of the photo: its top-left corner and side, in the photo's pixels."""

    left: int
    top: int
    side: int

    def box(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.left + self.side, self.top + self.side)

    def __str__(self) -> str:
        return f"{self.left},{self.top},{self.side}"


def parse_crop(text: str) -> Crop:
    """'LEFT,TOP,SIDE' in pixels, as the CLI and app take it."""
    parts = text.split(",")
    try:
        left, top, side = (int(p) for p in parts)
    except ValueError:
        raise RewritingError(f"a crop is LEFT,TOP,SIDE in whole pixels, got {text!r}") from None
    return Crop(left, top, side)


def open_photo(data: bytes | str) -> Image.Image:
    """An RGB photo from file bytes or a path (EXIF rotation applied), or a clear error."""
    try:
        source = io.BytesIO(data) if isinstance(data, bytes) else data
        with Image.open(source) as image:
            if image.width * image.height > MAX_PHOTO_PIXELS:
                raise RewritingError(
                    f"the photo has {image.width}x{image.height} pixels; the limit is "
                    f"{MAX_PHOTO_PIXELS} pixels"
                )
            return ImageOps.exif_transpose(image).convert("RGB")
    except FileNotFoundError:
        raise RewritingError(f"photo {data} does not exist") from None
    except IsADirectoryError:
        raise RewritingError(f"photo {data} is a folder, not an image") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise RewritingError(f"cannot read the photo: {err}") from None


def centred_crop(photo: Image.Image) -> Crop:
    """The largest square in the middle of the photo."""
    side = min(photo.size)
    return Crop((photo.width - side) // 2, (photo.height - side) // 2, side)


def check_crop(photo: Image.Image, crop: Crop) -> Crop:
    """`crop`, if it is a square of at least 8 pixels inside the photo."""
    if crop.side < 8 or crop.left < 0 or crop.top < 0 or (
        crop.left + crop.side > photo.width or crop.top + crop.side > photo.height
    ):
        raise RewritingError(
            f"crop {crop} (left,top,side) is not a square of at least 8 px inside the "
            f"{photo.width}x{photo.height} photo"
        )
    return crop


def prepare(photo: Image.Image, size: tuple[int, int], crop: Crop | None = None) -> np.ndarray:
    """The crop (centred when None) resized to `size` (height, width): uint8 [H, W, 3]."""
    crop = check_crop(photo, crop or centred_crop(photo))
    region = photo.crop(crop.box()).resize((size[1], size[0]), Image.LANCZOS)
    return np.asarray(region, dtype=np.uint8).copy()


def show_crop(photo: Image.Image, crop: Crop, longest: int = 256) -> np.ndarray:
    """The photo, shrunk to `longest` px, with the crop outlined: uint8 [H, W, 3]."""
    scale = min(1.0, longest / max(photo.size))
    small = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))))
    draw = ImageDraw.Draw(small)
    box = [round(v * scale) for v in crop.box()]
    draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=(255, 0, 200), width=2)
    return np.asarray(small, dtype=np.uint8).copy()
