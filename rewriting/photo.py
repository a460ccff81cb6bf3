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


@dataclass(frozen=True)
class FaceFraming:
    """How a face model's training images frame the face, as the Haar detector sees it: the
    face box's side and its centre's offset below the image centre, as shares of the image side."""

    face_share: float
    centre_below: float


#: OpenCV's frontal-face Haar cascade (shipped in opencv-python-headless's cv2.data).
FACE_CASCADE = "haarcascade_frontalface_default.xml"
#: Photos are searched for faces at most this many pixels on their longer side.
DETECT_PIXELS = 800


def find_face(photo: Image.Image) -> tuple[int, int, int] | None:
    """The largest frontal face in the photo: its box's centre x, centre y and side in the
    photo's pixels, or None when none is found."""
    import cv2

    scale = min(1.0, DETECT_PIXELS / max(photo.size))
    small = photo.convert("L").resize((round(photo.width * scale), round(photo.height * scale)))
    detector = cv2.CascadeClassifier(cv2.data.haarcascades + FACE_CASCADE)
    smallest = max(24, min(small.size) // 20)
    faces = detector.detectMultiScale(np.asarray(small), scaleFactor=1.1, minNeighbors=5,
                                      minSize=(smallest, smallest))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda box: box[2] * box[3])
    return round((x + w / 2) / scale), round((y + h / 2) / scale), round(w / scale)


def face_crop(photo: Image.Image, framing: FaceFraming) -> Crop | None:
    """The square that frames the photo's largest face as `framing` says (moved inside the
    photo, and shrunk to it when too large), or None when no face is found."""
    face = find_face(photo)
    if face is None:
        return None
    cx, cy, face_side = face
    side = min(round(face_side / framing.face_share), *photo.size)
    left = round(cx - side / 2)
    top = round(cy - framing.centre_below * side - side / 2)
    return Crop(min(max(0, left), photo.width - side), min(max(0, top), photo.height - side),
                side)


def default_crop(photo: Image.Image, framing: FaceFraming | None) -> tuple[Crop, str]:
    """The crop used when the user gives none, and a note saying how it was chosen: around the
    face for a face model (`framing` given), else, or when no face is found, the centred square."""
    if framing is None:
        return centred_crop(photo), "centred square"
    crop = face_crop(photo, framing)
    if crop is None:
        return centred_crop(photo), "no face found: centred square"
    return crop, "around the detected face"


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
