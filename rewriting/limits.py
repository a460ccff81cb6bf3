"""How much one input may ask for, and the checks that refuse more with a clear message.

The CLI, the file loaders and the app share these limits, so an input is refused the same way
wherever it comes from, before any work is done or anything is written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from .errors import RewritingError

#: Largest request file (or request text sent to the app), in bytes.
MAX_REQUEST_BYTES = 4 * 2**20
#: Deepest nesting of lists and objects in a request (ours needs 4 levels).
MAX_JSON_DEPTH = 16
#: Most context selections one request may hold.
MAX_CONTEXT = 64
#: Most pixels a painted mask image may have (a 2048x2048 canvas).
MAX_MASK_PIXELS = 2048 * 2048
#: Largest sample number (latents are rows of one seeded stream, drawn up to the largest).
MAX_SAMPLE_NUMBER = 99_999
#: Most samples one command renders or averages over (render, stats, held-out samples).
MAX_SAMPLES_PER_CALL = 10_000
#: Most samples one call of the app's API renders.
MAX_APP_SAMPLES = 64
#: Most pixels of one picture the CLI draws (a grid of samples, before/after rows).
MAX_PICTURE_PIXELS = 2**26
#: Largest enlargement of each sample in a picture.
MAX_SCALE = 16
#: A delta file that changes its weight by more than this times the weight's norm is refused
#: (an edit is refused above 1 when it is made; stacked edits may add up).
MAX_DELTA_NORM_RATIO = 10.0


def check_depth(data: Any, what: str) -> None:
    """Refuse JSON data nested deeper than MAX_JSON_DEPTH (walked without recursion)."""
    pending = [(data, 1)]
    while pending:
        item, depth = pending.pop()
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise RewritingError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children)


def parse_json(text: str | bytes, what: str) -> Any:
    """Decode JSON text of at most MAX_REQUEST_BYTES bytes and MAX_JSON_DEPTH levels."""
    if not isinstance(text, (str, bytes)):
        raise RewritingError(f"{what} must be JSON text, got {type(text).__name__}")
    size = len(text.encode("utf-8", "replace") if isinstance(text, str) else text)
    if size > MAX_REQUEST_BYTES:
        raise RewritingError(f"{what} is {size} bytes; the limit is {MAX_REQUEST_BYTES} bytes")
    try:
        data = json.loads(text)
    except RecursionError:
        raise RewritingError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, huge integers
        raise RewritingError(f"{what} is not valid JSON: {err}") from None
    check_depth(data, what)
    return data


def read_json_file(path: str | Path, what: str) -> Any:
    """Read and decode a JSON file under the same limits; a missing or odd path is an error."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_REQUEST_BYTES + 1)
    except FileNotFoundError:
        raise RewritingError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise RewritingError(f"{what} {path} is a folder, not a file") from None
    except OSError as err:
        raise RewritingError(f"cannot read {what} {path}: {err.strerror or err}") from None
    if len(raw) > MAX_REQUEST_BYTES:
        raise RewritingError(f"{what} {path} is over the limit of {MAX_REQUEST_BYTES} bytes")
    return parse_json(raw, f"{what} {path}")


def check_picture(rows: int, columns: int, image_size: tuple[int, int], scale: int) -> None:
    """Refuse a picture of rows x columns samples, each enlarged `scale` times, that is too big."""
    pixels = rows * columns * image_size[0] * image_size[1] * scale**2
    if pixels > MAX_PICTURE_PIXELS:
        raise RewritingError(
            f"the picture would have {pixels} pixels (limit {MAX_PICTURE_PIXELS}): "
            "ask for fewer samples or a smaller --scale"
        )


def check_context(selections: list) -> None:
    """Refuse a request with more than MAX_CONTEXT context selections."""
    if len(selections) > MAX_CONTEXT:
        raise RewritingError(
            f"the request has {len(selections)} context selections; the limit is {MAX_CONTEXT}"
        )


def parse_samples(text: str, limit: int = MAX_SAMPLES_PER_CALL) -> list[int]:
    """Sample numbers from '0-15', '3,5,9' or '0-3,10': at most `limit`, each a valid number."""
    if not isinstance(text, str):
        raise RewritingError(f"samples must be text like 0-15 or 1,4,9, got {text!r}")
    spans, count = [], 0
    for part in text.split(","):
        try:
            first, dash, last = part.partition("-")
            first = int(first)
            last = int(last) if dash else first
        except ValueError:
            raise RewritingError(f"bad sample list {text!r}: use e.g. 0-15 or 1,4,9") from None
        if first < 0 or last < first:
            raise RewritingError(f"bad sample list {text!r}: {part.strip()!r} needs first <= last")
        if last > MAX_SAMPLE_NUMBER:
            raise RewritingError(f"sample {last} is out of range: numbers go from 0 to "
                                 f"{MAX_SAMPLE_NUMBER}")
        count += last - first + 1
        if count > limit:
            raise RewritingError(f"{text!r} asks for more than {limit} samples; one call "
                                 f"renders at most {limit}")
        spans.append(range(first, last + 1))
    return [n for span in spans for n in span]


def check_latents(z: Any, z_dim: int) -> torch.Tensor:
    """Latents [N, z_dim] (1 <= N <= MAX_SAMPLES_PER_CALL), finite floating point, as float32."""
    if not isinstance(z, torch.Tensor) or not z.is_floating_point():
        kind = z.dtype if isinstance(z, torch.Tensor) else type(z).__name__
        raise RewritingError(f"latents must be floating point, got {kind}")
    if z.dim() != 2 or z.shape[1] != z_dim or not 1 <= z.shape[0] <= MAX_SAMPLES_PER_CALL:
        raise RewritingError(
            f"latents must have shape [N, {z_dim}] with 1 <= N <= {MAX_SAMPLES_PER_CALL}, "
            f"got {list(z.shape)}"
        )
    if not bool(torch.isfinite(z).all()):
        raise RewritingError("latents hold NaN or infinite values")
    return z.float()


# Hub names

#: Longest owner or repository name the Hub accepts.
MAX_REPO_PART = 96
#: Longest model, family, layer or license name, or digest, read from a file from outside.
MAX_NAME = 256
#: Longest branch or tag name accepted as a revision (git allows more; no real one comes close).
MAX_REVISION = 128
#: An owner or repository name: ASCII letters, digits, '-', '_', '.', starting and ending with a
#: letter or digit (the Hub's own rule; `\w` would let other alphabets in).
_REPO_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
#: A commit id, a branch or tag name of safe characters, or a pull request's ref.
_REVISION = re.compile(r"[0-9a-f]{40}|[A-Za-z0-9][A-Za-z0-9._-]*|refs/pr/[1-9][0-9]{0,8}")


def check_repo_id(repo_id: Any, what: str = "repository") -> str:
    """`repo_id` if it is OWNER/NAME in the Hub's ASCII rule (no '..' or '--'), else refused."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(
        len(p) <= MAX_REPO_PART and _REPO_PART.fullmatch(p) and ".." not in p and "--" not in p
        for p in parts
    ):
        shown = repr(repo_id)[:120]
        raise RewritingError(
            f"bad {what} {shown}: OWNER/NAME takes ASCII letters, digits, '-', '_' and '.' "
            f"(at most {MAX_REPO_PART} each, no '..' or '--')"
        )
    return repo_id


def check_revision(revision: Any) -> str:
    """`revision` if it is a commit id, a safe branch or tag name, or refs/pr/N, else refused.

    Never '..', a leading '/' or any other path: the Hub client names a file after it.
    """
    if not (
        isinstance(revision, str) and len(revision) <= MAX_REVISION
        and _REVISION.fullmatch(revision) and ".." not in revision
        and not revision.endswith((".lock", "."))
    ):
        shown = repr(revision)[:120]
        raise RewritingError(
            f"bad revision {shown}: give a 40-hex commit id or a branch or tag name of at most "
            f"{MAX_REVISION} ASCII letters, digits, '-', '_' and '.'"
        )
    return revision
