"""Small pictures of what each example does: the copied part beside the goal, as button icons."""

import functools
from pathlib import Path

import numpy as np

from rewriting.errors import RewritingError
from rewriting.limits import read_json_file
from rewriting.masks import mask_image

from . import session as ss
from .file_cache import image_file
from .settings import EMBEDDED_MODEL, EXAMPLE_GAP_PX

#: Brightness left outside the copied part, so that the part itself stands out.
DIMMED = 0.3


def copied_part(session: ss.Session) -> np.ndarray:
    """The copy sample, uint8 [H, W, 3], dimmed outside the copied part."""
    selection = session.copy
    image = ss.samples(session, [selection.sample])[0]
    cover = mask_image(selection.mask, session.generator.image_size, selection.paper).numpy()
    light = DIMMED + (1 - DIMMED) * cover[..., None]
    return (image * light).round().astype(np.uint8)


@functools.cache
def example_picture(request_file: Path) -> np.ndarray:
    """RGBA [H, 2W + gap, 4] on the embedded model, made once per process (read-only): the
    example's copied part, a transparent gap, then its goal (the copied part pasted where it
    should go)."""
    data = read_json_file(request_file, "example")
    session, _ = ss.Session.start(EMBEDDED_MODEL).loaded(data)
    if session.copy is None:
        raise RewritingError(f"{request_file.name} copies nothing: an example picture shows "
                             "a copied part and its goal")
    halves = [copied_part(session), ss.paste_preview(session)]
    height = halves[0].shape[0]
    opaque = [np.concatenate([h, np.full((height, h.shape[1], 1), 255, np.uint8)], -1)
              for h in halves]
    gap = np.zeros((height, EXAMPLE_GAP_PX, 4), np.uint8)
    picture = np.concatenate([opaque[0], gap, opaque[1]], axis=1)
    picture.setflags(write=False)
    return picture


def example_thumbnail(request_file: Path) -> Path:
    """A PNG of what the example request does (`example_picture`), in this process's folder of
    Gradio's cache (written again should the folder have lost it)."""
    return Path(image_file(example_picture(request_file)))
