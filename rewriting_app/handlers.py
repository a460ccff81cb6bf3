"""What the event handlers share: errors as warnings, ZeroGPU, the visitor's session, tiles."""

import functools
from collections.abc import Callable, Sequence

import gradio as gr
import numpy as np

from rewriting.errors import RewritingError, one_line
from rewriting.limits import MAX_SAMPLE_NUMBER

from . import session as ss
from .file_cache import image_file
from .gpu import on_gpu as on_gpu  # the handlers' modules take it from here
from .pictures import enlarge
from .sentences import for_visitors
from .settings import CANVAS_PX, DEFAULT_MODEL, PAGE, TILE_PX

#: Handlers that report progress take this default; Gradio hands each call its own tracker.
PROGRESS = gr.Progress()


def friendly(fn: Callable) -> Callable:
    """Show an engine error as a warning in the page (without the server's paths or commands)
    and update nothing: state stays as it was."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RewritingError as err:
            gr.Warning(for_visitors(one_line(err)))
            return gr.skip()

    return wrapper


def api_errors(fn: Callable) -> Callable:
    """Give an API client the engine's message (without the server's paths or commands) as the
    call's error; its state stays as it was."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RewritingError as err:
            raise gr.Error(for_visitors(one_line(err)), print_exception=False) from None

    return wrapper


def page_start(start: float | None) -> int:
    """The first sample of a grid page: `start` clamped so that the whole page exists."""
    return min(max(0, int(start or 0)), MAX_SAMPLE_NUMBER + 1 - PAGE)


def as_number(value: object, what: str, kind: type[int] | type[float] = int) -> int | float:
    """A number of `kind` (whole by default) from a page or an API call (a number or its text),
    or a clear error."""
    try:
        return kind(str(value).strip())
    except ValueError:
        words = "a whole number" if kind is int else "a number"
        raise RewritingError(f"{what} must be {words}, got {value!r}") from None


def current(state: ss.Session | None) -> ss.Session:
    """The visitor's session; API clients and new tabs start on the default model."""
    return state if state is not None else ss.Session.start(DEFAULT_MODEL)


def tiles(
    numbers: Sequence[int], images: np.ndarray, extra: Callable[[int], str] = lambda n: "",
    size: int = TILE_PX,
) -> list[tuple[np.ndarray, str]]:
    """Gallery items captioned with their sample numbers, enlarged to at least `size` px."""
    pairs = zip(numbers, images, strict=True)
    return [(image_file(enlarge(im, size)), f"#{n}{extra(n)}") for n, im in pairs]


def canvas_value(image: np.ndarray) -> dict:
    """An ImageEditor value: `image` [H, W, 3] enlarged, opaque, no strokes."""
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], -1)
    return {"background": image_file(enlarge(rgba, CANVAS_PX)), "layers": [],
            "composite": None}
