"""The registry names things, and only that: every generator family and pretrained model the
tool knows, found by plugin. Loading them is `zoo.loader`'s job.

Built-in plugins are the modules of the `plugins` package that define `PLUGIN`; third-party
packages add theirs under the entry-point group `rewriting.generators` (the entry point names a
`Plugin` object, or a module that defines `PLUGIN`).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
import re
from functools import cache
from importlib.metadata import entry_points
from types import ModuleType

import plugins
from plugins.base import HubFile, LocalFile, ModelEntry, Plugin, Source
from rewriting.errors import RewritingError

ENTRY_POINT_GROUP = "rewriting.generators"


def _as_plugin(obj: object, origin: str) -> Plugin:
    if isinstance(obj, ModuleType):
        obj = getattr(obj, "PLUGIN", None)
    if not isinstance(obj, Plugin):
        raise RewritingError(f"{origin} does not provide a plugins.base.Plugin")
    return obj


@cache
def all_plugins() -> dict[str, Plugin]:
    """Every plugin by family name: built-in ones first, then installed third-party ones."""
    found: dict[str, Plugin] = {}
    for info in pkgutil.iter_modules(plugins.__path__):
        module = importlib.import_module(f"plugins.{info.name}")
        if isinstance(getattr(module, "PLUGIN", None), Plugin):
            found[module.PLUGIN.family] = module.PLUGIN
    for point in entry_points(group=ENTRY_POINT_GROUP):
        plugin = _as_plugin(point.load(), f"entry point {point.name!r} ({point.value})")
        found.setdefault(plugin.family, plugin)
    return found


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.4)
    return f"; did you mean {', '.join(close)}?" if close else ""


def plugin(family: str) -> Plugin:
    """The plugin of a generator family, or a clear error naming the known ones."""
    known = all_plugins()
    if family not in known:
        raise RewritingError(
            f"unknown generator family {family!r}{_suggest(family, list(known))} "
            f"(known: {', '.join(known)})"
        )
    return known[family]


def list_models(pattern: str = "*") -> list[ModelEntry]:
    """Pretrained models whose name matches the glob `pattern`, e.g. ``"stylegan2*"``."""
    entries = [m for p in all_plugins().values() for m in p.models]
    return [m for m in entries if fnmatch.fnmatchcase(m.name, pattern)]


_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def pinning(source: Source) -> tuple[bool, str]:
    """Whether a catalog source is pinned (full sha256, and a commit for Hub files), and how."""
    if isinstance(source, LocalFile):
        return False, "no: a local file"
    digest = (source.sha256 or "").lower()
    gaps = [] if _SHA256.fullmatch(digest) else [
        f"{len(digest)}-hex sha256 prefix" if digest else "no sha256"
    ]
    if isinstance(source, HubFile) and not _COMMIT.fullmatch(source.revision):
        gaps.append(f"branch {source.revision}")
    if gaps:
        return False, "no: " + ", ".join(gaps)
    return True, "yes: commit + sha256" if isinstance(source, HubFile) else "yes: sha256"


def model_entry(name: str) -> ModelEntry:
    """The catalog entry of a model name, or a clear error that suggests close names."""
    entries = {m.name: m for m in list_models()}
    if name not in entries:
        raise RewritingError(
            f"unknown model {name!r}{_suggest(name, list(entries))} "
            "(`python -m rewriting models` lists them)"
        )
    return entries[name]
