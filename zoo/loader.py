"""The one loader: a model by name (a catalog entry, or the path of a local checkpoint) built
once per process into a generator shared read-only by every thread, and where each came from.

One cache holds every shared generator (and the Hub's published models and stacks, through
`shared`), guarded by one lock; a model is built once, under a lock of its own key (reentrant:
a published model whose chain of bases loops back is refused by the Hub loader, not deadlocked),
so that a slow download blocks only those who wait for that model.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from plugins.base import LocalFile, ModelEntry, Plugin
from rewriting.device import current_device, current_precision
from rewriting.errors import RewritingError
from rewriting.generator import Generator

from .checkpoint import (
    checkpoint_sha256,
    is_local_model,
    local_family,
    local_license,
    read_checkpoint,
)
from .fetch import Progress, resolve
from .registry import list_models, model_entry, plugin

T = TypeVar("T")
_cache: dict[Hashable, Any] = {}
_building: dict[Hashable, threading.RLock] = {}
_lock = threading.Lock()
#: Where each generator loaded from the Hub or a local file came from (license, source).
_origins: weakref.WeakKeyDictionary[Generator, dict[str, Any]] = weakref.WeakKeyDictionary()


def shared(key: Hashable, make: Callable[[], T]) -> T:
    """The object cached under `key`, made by `make()` the first time (once, whoever asks); a
    generator is also registered as the process's shared copy (`Generator.share`)."""
    with _lock:
        if key in _cache:
            return _cache[key]
        building = _building.setdefault(key, threading.RLock())
    with building:
        with _lock:
            if key in _cache:
                return _cache[key]
        try:
            made = make()
        finally:
            with _lock:
                _building.pop(key, None)
        with _lock:
            kept = _cache.setdefault(key, made)
        if isinstance(kept, Generator):
            kept.share(repr(key))
        return kept


def remember_origin(generator: Generator, origin: dict[str, Any]) -> None:
    """Record where a generator not in the catalog came from (license, source) for publishing."""
    _origins[generator] = origin


def origin_of(generator: Generator) -> dict[str, Any] | None:
    """Where a generator not in the catalog came from, if it was recorded."""
    return _origins.get(generator)


def build_checked(
    builder: Plugin, checkpoint: dict, entry: ModelEntry, digest: str, what: str
) -> Generator:
    """`builder.build(...)` on tensors from outside, any failure of theirs as one clear line;
    the generator is placed on the process's device (`rewriting.device`), rendering there in
    its precision."""
    try:
        generator = builder.build(checkpoint, entry, digest)
    except RewritingError:
        raise
    except (LookupError, TypeError, ValueError, AttributeError, RuntimeError,
            ArithmeticError) as err:
        first = (str(err).splitlines() or [""])[0][:200]
        raise RewritingError(
            f"{what} is not a usable {builder.family} checkpoint ({type(err).__name__}: {first})"
        ) from None
    generator.to(current_device())
    generator.render_dtype = current_precision()
    return generator


def build_from_file(
    path: str | Path, family: str | Plugin, name: str | None = None
) -> Generator:
    """Build a generator of `family` (a family name, or a plugin) from a local checkpoint file."""
    path = Path(path)
    builder = family if isinstance(family, Plugin) else plugin(family)
    entry = ModelEntry(
        name=name or path.stem, family=builder.family, source=LocalFile(str(path)),
        license="unknown",
    )
    checkpoint = read_checkpoint(path)
    return build_checked(builder, checkpoint, entry, checkpoint_sha256(path), str(path))


def load_model(name: str, progress: Progress | None = None) -> Generator:
    """A catalog model, or the local checkpoint file or converted folder at the path `name`,
    loaded once per process (a file once per content); shared, and never to be modified."""
    if name not in {m.name for m in list_models()} and is_local_model(name):
        sha256 = checkpoint_sha256(name)
        return shared(("local", str(Path(name).resolve()), sha256, str(current_device())),
                      lambda: _load_local(name, sha256))
    return shared(("catalog", name, str(current_device())), lambda: _load_catalog(name, progress))


def _load_catalog(name: str, progress: Progress | None) -> Generator:
    entry = model_entry(name)
    if entry.unsupported:
        raise RewritingError(f"model {name!r} is listed but not supported yet: "
                             f"{entry.unsupported}")
    path = resolve(entry.source, progress)
    generator = build_checked(plugin(entry.family), read_checkpoint(path), entry,
                              checkpoint_sha256(path), str(path))
    generator.face_framing = entry.face_framing
    return generator


def _load_local(name: str, sha256: str) -> Generator:
    checkpoint = read_checkpoint(name)
    family = local_family(checkpoint, name)
    entry = ModelEntry(name, family, LocalFile(name), local_license(checkpoint))
    generator = build_checked(plugin(family), checkpoint, entry, sha256, name)
    remember_origin(generator, {"license": entry.license, "source": None})
    return generator
