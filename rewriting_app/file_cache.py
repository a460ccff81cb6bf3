"""The page's files in Gradio's cache (pictures named by their pixels, downloads), kept an hour."""

import atexit
import functools
import hashlib
import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from gradio.utils import get_upload_folder
from PIL import Image

from rewriting.atomic import write_atomically

#: Seconds a rendered picture or a download stays in Gradio's cache.
CACHE_AGE = 3600


@functools.cache
def gallery_dir() -> Path:
    """This process's folder of rendered gallery images in Gradio's cache, removed when the app
    exits (or, after a crash, swept with stale download folders)."""
    folder = download_dir()
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def image_file(image: np.ndarray) -> str:
    """The image as a PNG named by its pixels, written atomically (once: the same pixels again
    are not encoded again).

    Gradio caches an array output by rewriting a file named by its content in place, so a
    visitor fetching the same picture at that moment (two visitors viewing the same samples)
    could read it half-written; a finished file handed over is copied atomically instead.
    """
    pixels = np.ascontiguousarray(image)
    named = hashlib.sha256(f"{pixels.shape}{pixels.dtype.str}".encode())
    named.update(pixels.data)
    path = gallery_dir() / f"{named.hexdigest()[:40]}.png"
    if not path.exists():
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)  # fast, ~20% larger
        write_atomically(path, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
    return str(path)


def download_dir() -> Path:
    """A new folder for one download, inside Gradio's cache, which deletes the files the app
    served once they are `CACHE_AGE` old; older download folders (of an app that was stopped
    before that, or emptied) go too."""
    cache = Path(get_upload_folder())
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob("rewriting-*"):
        try:
            if time.time() - old.stat().st_mtime > CACHE_AGE:
                shutil.rmtree(old)
        except OSError:  # another app's folder, deleted meanwhile
            continue
    return Path(tempfile.mkdtemp(prefix="rewriting-", dir=cache))
