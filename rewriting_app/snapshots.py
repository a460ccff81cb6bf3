"""A session kept in the browser, checked before anything loads: fields, edits, photo latents."""

from __future__ import annotations

import base64
import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load as load_tensors

from rewriting.delta import Delta, EditStack, load_stack
from rewriting.errors import RewritingError
from rewriting.generator import Generator
from rewriting.latents import NAME, NamedLatent, check_sample_latent, from_tensors
from rewriting.limits import (
    MAX_CONTEXT,
    MAX_NAME,
    MAX_REQUEST_BYTES,
    MAX_SNAPSHOT_CHARS,
    check_decoded,
)
from rewriting.request import parse_request
from rewriting.rewrite import check_request
from zoo.hub import MAX_STACK


def check_stack_size(count: int) -> None:
    """Refuse more edits than MAX_STACK, the most a published stack holds."""
    if count > MAX_STACK:
        raise RewritingError(f"{count} edits are more than the {MAX_STACK} a session holds")


def checked_stack(generator: Generator, deltas: Sequence[Delta]) -> EditStack:
    """The edits as a stack on `generator`: at most MAX_STACK, each made for its weights and
    with a request that is valid for it, checked like a request file."""
    check_stack_size(len(deltas))
    stack = EditStack(generator, deltas)
    for number, delta in enumerate(deltas, 1):
        try:
            check_request(generator, parse_request(delta.request, latents=delta.latents))
        except RewritingError as err:
            raise RewritingError(f"edit {number} has a malformed request: {err}") from None
    return stack


#: Format tag of a session kept in the visitor's browser.
SNAPSHOT_FORMAT = "rewriting-session/1"


@contextmanager
def stack_file() -> Iterator[Path]:
    """A new file in the temp folder for a stack of edits on its way to or from a browser,
    removed afterwards."""
    with tempfile.NamedTemporaryFile(prefix="rewriting-snapshot-", suffix=".safetensors") as file:
        yield Path(file.name)


def _name(value: object) -> bool:
    """Whether `value` is a name of 1 to MAX_NAME characters."""
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME


def _number(value: object) -> bool:
    """Whether `value` is a finite JSON number (not true or false)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


#: What each field of a snapshot but its format must hold (a test, and its words in the
#: visitor's message).
SNAPSHOT_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "model": (_name, f"a model name of at most {MAX_NAME} characters"),
    "layer": (_name, f"a layer name of at most {MAX_NAME} characters"),
    "truncation": (lambda v: v is None or _number(v), "empty or a number"),
    "edits": (lambda v: isinstance(v, str) and len(v) <= MAX_REQUEST_BYTES,
              f"text of at most {MAX_REQUEST_BYTES} characters"),
    "copy": (lambda v: v is None or isinstance(v, dict), "empty or a selection"),
    "paste": (lambda v: v is None or isinstance(v, dict), "empty or a selection"),
    "context": (lambda v: isinstance(v, list) and len(v) <= MAX_CONTEXT,
                f"a list of at most {MAX_CONTEXT} selections"),
    "latents": (lambda v: isinstance(v, dict), "photo latents by name"),
}


def checked_snapshot(data: object) -> dict:
    """`snapshot`'s JSON as a browser handed it back, if it has its size, depth, fields and
    their types; refused otherwise, before anything is loaded."""
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise RewritingError("the saved session is not one this version of the app wrote")
    check_decoded(data, "the saved session", MAX_SNAPSHOT_CHARS)
    unknown = sorted(set(data) - {"format", *SNAPSHOT_FIELDS})
    if unknown:
        raise RewritingError(f"the saved session has unknown fields ({', '.join(unknown)[:80]})")
    for key, (valid, words) in SNAPSHOT_FIELDS.items():
        if key not in data or not valid(data[key]):
            raise RewritingError(f'the saved session\'s "{key}" is not {words}')
    return data


def snapshot_edits(text: str) -> list[Delta]:
    """The edits of a snapshot (a stack file as base64 text), at most MAX_STACK."""
    with stack_file() as path:
        try:
            path.write_bytes(base64.b64decode(text, validate=True))
        except ValueError:
            raise RewritingError("the saved session's edits are not base64") from None
        deltas = load_stack(path, "the saved session's edits")
    check_stack_size(len(deltas))  # before the model loads
    return deltas


def restored_latents(data: object, generator: Generator) -> dict[str, NamedLatent]:
    """A snapshot's latents (name: base64 safetensors), each one a photo sample can use."""
    if not isinstance(data, dict) or sum(map(len, map(str, data.values()))) > MAX_REQUEST_BYTES:
        raise RewritingError("the saved session's photo latents are malformed or too large")
    out = {}
    for name, text in data.items():
        try:
            if not NAME.fullmatch(str(name)):
                raise ValueError(name)
            tensors = load_tensors(base64.b64decode(str(text), validate=True))
        except (ValueError, SafetensorError):
            raise RewritingError(f"the saved session's latent {name!r} is malformed") from None
        out[name] = from_tensors(tensors, generator.name, generator.weights_sha256,
                                 f"the saved session's latent {name!r}")
        check_sample_latent(out[name], generator, name)
    return out
