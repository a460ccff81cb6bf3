"""Edited models published by this tool on the Hub, loaded as `hub:OWNER/NAME[@REVISION]`.

A published repository holds `edit.json` (the request and its provenance), `delta.safetensors`
and, unless it was pushed delta-only, `model.safetensors` with the full edited weights. For a
delta-only repository the base model is either a catalog entry, fetched by name from the source
and hash the catalog itself gives, or another `hub:` repository, by id and revision, at most
`MAX_BASE_DEPTH` repositories deep. A source, URL, package or path written in edit.json is never
used: a repository cannot make this process fetch, import or read anything its catalog did not
name. Either way the edited weights must match the digest that edit.json records, so both
kinds of repository render the same images, bit for bit, as the edited model they came from.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import weakref
from pathlib import Path
from typing import Any

from plugins.base import HubFile, ModelEntry, PackageFile, Source, UrlFile
from rewriting.checksum import state_digest
from rewriting.delta import Delta, EditStack
from rewriting.editdir import DELTA_FILE
from rewriting.errors import RewritingError
from rewriting.generator import Generator

from . import registry
from .checkpoint import read_checkpoint
from .fetch import Progress, hub_endpoint, hub_is_anonymous, resolve

HUB_PREFIX = "hub:"
EDIT_FORMAT = "gan-rewriting-edit/1"
EDIT_FILE = "edit.json"
WEIGHTS_FILE = "model.safetensors"

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
#: A base revision recorded in edit.json: a commit id, or a branch or tag name.
_REVISION = re.compile(r"[\w.-]{1,128}")
#: How many delta-only repositories may stand on top of one another.
MAX_BASE_DEPTH = 4
_SOURCES: dict[str, type] = {cls.__name__: cls for cls in (HubFile, UrlFile, PackageFile)}
#: Where each generator loaded from the Hub or a local file came from (license, source).
_origins: weakref.WeakKeyDictionary[Generator, dict[str, Any]] = weakref.WeakKeyDictionary()


def remember_origin(generator: Generator, origin: dict[str, Any]) -> None:
    """Record where a generator not in the catalog came from (license, source) for publishing."""
    _origins[generator] = origin


def parse_spec(spec: str) -> tuple[str, str]:
    """`hub:OWNER/NAME[@REVISION]` as (repo id, revision); the revision defaults to main."""
    body = spec.removeprefix(HUB_PREFIX)
    repo_id, _, revision = body.partition("@")
    if not spec.startswith(HUB_PREFIX) or not _REPO_ID.fullmatch(repo_id) or "@" in revision:
        raise RewritingError(
            f"bad Hub model {spec!r}: write hub:OWNER/NAME or hub:OWNER/NAME@REVISION"
        )
    return repo_id, revision or "main"


def source_json(source: Source) -> dict[str, Any] | None:
    """A downloadable source as JSON for edit.json (local paths are not published)."""
    if type(source).__name__ not in _SOURCES:
        return None
    return {"type": type(source).__name__, **dataclasses.asdict(source)}


def provenance(generator: Generator) -> dict[str, Any]:
    """What edit.json records about a base model: name, family, weights, license, source."""
    record = {
        "model": generator.name,
        "family": generator.family,
        "weights_sha256": generator.weights_sha256,
        "license": "unknown",
        "source": None,
    }
    if generator in _origins:
        record.update(_origins[generator])
    elif (entry := _catalog_entry(generator.name)) is not None:
        record.update(license=entry.license, source=source_json(entry.source))
    return record


def read_edit_info(path: Path, spec: str) -> dict[str, Any]:
    """The edit.json of a published repository, checked for the fields loading needs."""
    try:
        info = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise RewritingError(f"{spec}: cannot read its {EDIT_FILE} ({err})") from None
    if not isinstance(info, dict) or info.get("format") != EDIT_FORMAT:
        raise RewritingError(
            f"{spec} was not published by this tool (its {EDIT_FILE} is not {EDIT_FORMAT})"
        )
    base = info.get("base")
    missing = [k for k in ("family", "edited_weights_sha256") if not isinstance(info.get(k), str)]
    missing += [] if isinstance(info.get("files"), dict) else ["files"]
    named = isinstance(base, dict) and isinstance(base.get("model"), str)
    missing += [] if named else ["base.model"]
    if missing:
        raise RewritingError(f"{spec}: its {EDIT_FILE} lacks {', '.join(missing)}")
    return info


def _catalog_entry(name: str) -> ModelEntry | None:
    """The catalog entry named exactly `name`, if this installation has one."""
    return next((m for m in registry.list_models() if m.name == name), None)


def _load_base(
    base: dict[str, Any], family: str, chain: tuple[str, ...], progress: Progress | None
) -> Generator:
    """The base model of a delta-only repository: a catalog entry, or a `hub:` repository.

    `chain` lists the repositories being loaded, outermost first, to stop loops and depth.
    """
    name, spec = base["model"], chain[-1]
    if name.startswith(HUB_PREFIX):
        revision = (base.get("source") or {}).get("revision")
        if not isinstance(revision, str) or not _REVISION.fullmatch(revision):
            raise RewritingError(
                f"{spec}: its base {name} has no valid revision in {EDIT_FILE} (a commit id)"
            )
        base_spec = f"{name}@{revision}"
        parse_spec(base_spec)
        return load_hub(base_spec, progress, chain)
    entry = _catalog_entry(name)
    if entry is None:
        raise RewritingError(
            f"{spec}: its base model {name!r} is not in this installation's catalog; a published "
            "delta loads only on a catalog model or another hub: repository (install the plugin "
            "that provides it)"
        )
    if entry.family != family:
        raise RewritingError(
            f"{spec}: its {EDIT_FILE} says family {family!r}, but the catalog's {name} is "
            f"{entry.family!r}"
        )
    generator = registry.load_model(name, progress)
    recorded = base.get("weights_sha256")
    if recorded is not None and recorded != generator.weights_sha256:
        raise RewritingError(
            f"{spec} was made on other weights than the catalog's {name} "
            f"({str(recorded)[:12]} != {generator.weights_sha256[:12]})"
        )
    return generator


#: Published models loaded in this process, by Hub, repository, commit and whether loaded
#: without a token (shared, read-only).
_loaded: dict[tuple[str, str, str], Generator] = {}
_lock = threading.Lock()


def load_hub(
    spec: str, progress: Progress | None = None, chain: tuple[str, ...] = ()
) -> Generator:
    """The edited generator published at `hub:OWNER/NAME[@REVISION]`.

    `chain` holds the repositories whose bases are being loaded (internal: loops and depth).
    """
    repo_id, revision = parse_spec(spec)
    if len(chain) > MAX_BASE_DEPTH:
        raise RewritingError(
            f"{chain[0]}: its chain of base models is deeper than {MAX_BASE_DEPTH} repositories"
        )
    info_path = resolve(HubFile(repo_id, EDIT_FILE, revision), progress)
    # In the Hugging Face cache the file sits in snapshots/<commit>/: pin the other files to it.
    commit = info_path.parent.name if info_path.parent.parent.name == "snapshots" else revision
    key = (hub_endpoint(), repo_id, commit, hub_is_anonymous())
    with _lock:
        if key in _loaded:
            return _loaded[key]
    info = read_edit_info(info_path, spec)
    if info["files"].get("weights"):
        state = read_checkpoint(resolve(HubFile(repo_id, WEIGHTS_FILE, commit), progress))
    else:
        here = f"{HUB_PREFIX}{repo_id}@{commit}"
        if any(link.partition("@")[0] == HUB_PREFIX + repo_id for link in chain):
            raise RewritingError(
                f"{chain[0]}: its chain of base models comes back to {HUB_PREFIX}{repo_id}"
            )
        base = _load_base(info["base"], info["family"], (*chain, here), progress)
        delta = Delta.load(resolve(HubFile(repo_id, DELTA_FILE, commit), progress))
        state = EditStack(base, [delta]).state_dict()
    digest = state_digest(state)
    if digest != info["edited_weights_sha256"]:
        raise RewritingError(
            f"{spec}: the edited weights do not match the digest its {EDIT_FILE} records "
            f"({digest[:12]} != {str(info['edited_weights_sha256'])[:12]}); the repository is "
            "damaged or its base model changed"
        )
    base = info["base"]
    catalog = _catalog_entry(base["model"])
    entry = ModelEntry(
        name=HUB_PREFIX + repo_id, family=info["family"],
        source=HubFile(repo_id, WEIGHTS_FILE, commit), license=base.get("license", "unknown"),
        default_layer=info.get("default_layer"), options=catalog.options if catalog else {},
    )
    generator = registry.plugin(info["family"]).build(state, entry, digest)
    _origins[generator] = {
        "license": entry.license,
        "source": {"type": "HubRepo", "repo_id": repo_id, "revision": commit},
    }
    with _lock:
        return _loaded.setdefault(key, generator)


def load_any(name: str, progress: Progress | None = None) -> Generator:
    """A catalog model by name, or an edited model published on the Hub (`hub:OWNER/NAME`)."""
    if name.startswith(HUB_PREFIX):
        return load_hub(name, progress)
    return registry.load_model(name, progress)
