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
import re
from pathlib import Path
from typing import Any

from plugins.base import HubFile, ModelEntry, PackageFile, Source, UrlFile
from rewriting.checksum import state_digest
from rewriting.delta import Delta, EditStack
from rewriting.editdir import DELTA_FILE
from rewriting.errors import RewritingError
from rewriting.generator import Generator
from rewriting.limits import MAX_NAME, check_repo_id, check_revision, read_json_file

from . import loader, registry
from .checkpoint import read_checkpoint
from .fetch import Progress, hub_endpoint, hub_is_anonymous, resolve
from .hub_stats import STATS_FILE, adopt_stats

HUB_PREFIX = "hub:"
EDIT_FORMAT = "gan-rewriting-edit/1"
#: The edit.json of a repository holding a stack of edits, applied in order.
STACK_FORMAT = "gan-rewriting-stack/1"
EDIT_FILE = "edit.json"
WEIGHTS_FILE = "model.safetensors"
#: In a stack repository with full weights: the base values of every edited weight tensor.
BASE_WEIGHTS_FILE = "base_weights.safetensors"
#: Where the delta and the picture of edit number N (from 1) of a stack lie in its repository.
STACK_DELTA = "edits/{}/delta.safetensors"
STACK_PICTURE = "edits/{}/before_after.png"
#: The most edits a published stack may hold.
MAX_STACK = 64

#: How many delta-only repositories may stand on top of one another.
MAX_BASE_DEPTH = 4
_SOURCES: dict[str, type] = {cls.__name__: cls for cls in (HubFile, UrlFile, PackageFile)}
def parse_spec(spec: str) -> tuple[str, str]:
    """`hub:OWNER/NAME[@REVISION]` as (repo id, revision); the revision defaults to main."""
    usage = "write hub:OWNER/NAME or hub:OWNER/NAME@REVISION"
    if not isinstance(spec, str) or not spec.startswith(HUB_PREFIX):
        raise RewritingError(f"bad Hub model {str(spec)[:120]!r}: {usage}")
    repo_id, at, revision = spec.removeprefix(HUB_PREFIX).partition("@")
    try:
        return check_repo_id(repo_id, "Hub model"), check_revision(revision) if at else "main"
    except RewritingError as err:
        raise RewritingError(f"{err}; {usage}") from None


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
    if (origin := loader.origin_of(generator)) is not None:
        record.update(origin)
    elif (entry := _catalog_entry(generator.name)) is not None:
        record.update(license=entry.license, source=source_json(entry.source))
    return record


def read_edit_info(path: Path, spec: str) -> dict[str, Any]:
    """The edit.json of a published repository (size and depth limited before it is parsed),
    checked field by field for what loading needs."""
    info = read_json_file(path, f"{spec}: its {EDIT_FILE}")
    if not isinstance(info, dict) or info.get("format") not in (EDIT_FORMAT, STACK_FORMAT):
        raise RewritingError(
            f"{spec} was not published by this tool (its {EDIT_FILE} is neither {EDIT_FORMAT} "
            f"nor {STACK_FORMAT})"
        )
    base, files = info.get("base"), info.get("files")
    wrong = [k for k in ("family", "edited_weights_sha256") if not _short_text(info.get(k))]
    wrong += [] if info.get("default_layer") is None or _short_text(info["default_layer"]) else [
        "default_layer (a layer name)"
    ]
    wrong += [] if isinstance(files, dict) else ["files"]
    if not isinstance(base, dict) or not _short_text(base.get("model")):
        wrong.append("base.model")
    elif not all(base.get(k) is None or _short_text(base[k]) for k in _BASE_TEXT):
        wrong.append("base.license and base.weights_sha256 (text)")
    elif base.get("source") is not None and not isinstance(base["source"], dict):
        wrong.append("base.source (an object)")
    if info["format"] == STACK_FORMAT:
        edits = info.get("edits")
        if not isinstance(edits, list) or not 1 <= len(edits) <= MAX_STACK:
            wrong.append(f"edits (a list of 1 to {MAX_STACK})")
        if isinstance(files, dict) and files.get("weights") and not _short_text(
            info.get("base_state_sha256")
        ):
            wrong.append("base_state_sha256")
    if wrong:
        raise RewritingError(f"{spec}: its {EDIT_FILE} lacks {', '.join(wrong)}")
    _stats_files(info, spec)
    return info


#: The fields of edit.json's base that are text when present.
_BASE_TEXT = ("license", "weights_sha256")


def _short_text(value: Any) -> bool:
    """Whether `value` is a non-empty name or digest of at most MAX_NAME characters."""
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME


def is_stack(info: dict[str, Any]) -> bool:
    """Whether an edit.json describes a stack of edits (else a single edit)."""
    return info["format"] == STACK_FORMAT


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
        source = base.get("source")
        revision = source.get("revision") if isinstance(source, dict) else None
        try:
            check_revision(revision)
        except RewritingError as err:
            raise RewritingError(
                f"{spec}: its base {name[:120]} has no valid revision in {EDIT_FILE} ({err})"
            ) from None
        return load_hub(f"{name}@{revision}", progress, chain)
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
    generator = loader.load_model(name, progress)
    recorded = base.get("weights_sha256")
    if recorded is not None and recorded != generator.weights_sha256:
        raise RewritingError(
            f"{spec} was made on other weights than the catalog's {name} "
            f"({str(recorded)[:12]} != {generator.weights_sha256[:12]})"
        )
    return generator


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
    commit = _commit(info_path, revision)
    return loader.shared(_key("model", repo_id, commit),
                         lambda: _edited(spec, info_path, repo_id, commit, chain, progress))


def _key(kind: str, repo_id: str, commit: str) -> tuple[str, ...]:
    """The shared cache's key of a repository's model or stack: by Hub, repository, commit and
    whether it was loaded without a token."""
    return (f"hub-{kind}", hub_endpoint(), repo_id, commit, str(hub_is_anonymous()))


def _edited(
    spec: str, info_path: Path, repo_id: str, commit: str, chain: tuple[str, ...],
    progress: Progress | None,
) -> Generator:
    """The edited generator of a repository, from its full weights or its base and deltas."""
    info = read_edit_info(info_path, spec)
    if info["files"].get("weights"):
        state = read_checkpoint(resolve(HubFile(repo_id, WEIGHTS_FILE, commit), progress))
    else:
        base = _load_base(info["base"], info["family"], _link(chain, repo_id, commit), progress)
        state = EditStack(base, _deltas(info, repo_id, commit, progress)).state_dict()
    digest = _check_digest(state, info["edited_weights_sha256"], spec, "edited weights")
    generator = build_published(info, state, digest, HUB_PREFIX + repo_id,
                                HubFile(repo_id, WEIGHTS_FILE, commit))
    adopt_stats(generator, _stats_files(info, spec), repo_id, commit, progress)
    return generator


def build_published(
    info: dict[str, Any], state: dict[str, Any], digest: str, name: str, source: HubFile
) -> Generator:
    """A generator of the repository's family from checked tensors, remembered as coming from
    that repository (with its base's license)."""
    catalog = _catalog_entry(info["base"]["model"])
    entry = ModelEntry(
        name=name, family=info["family"], source=source,
        license=info["base"].get("license") or "unknown", default_layer=info.get("default_layer"),
        options=catalog.options if catalog else {},
    )
    generator = loader.build_checked(registry.plugin(info["family"]), state, entry, digest,
                                       f"{HUB_PREFIX}{source.repo_id} ({source.filename})")
    loader.remember_origin(generator, {
        "license": entry.license,
        "source": {"type": "HubRepo", "repo_id": source.repo_id, "revision": source.revision},
    })
    return generator


def _stats_files(info: dict[str, Any], spec: str) -> list[str]:
    """The published statistics files edit.json lists (`stats/LAYER.safetensors`), if any."""
    names = info["files"].get("stats") or []
    pattern = re.compile(r"[A-Za-z0-9_.-]{1,128}".join(map(re.escape, STATS_FILE.split("{}"))))
    if not isinstance(names, list) or not all(
        isinstance(n, str) and pattern.fullmatch(n) for n in names
    ):
        raise RewritingError(f"{spec}: its {EDIT_FILE} lists malformed statistics files")
    return names


def _commit(info_path: Path, revision: str) -> str:
    """The commit a downloaded edit.json belongs to, to pin the repository's other files to."""
    # In the Hugging Face cache the file sits in snapshots/<commit>/.
    return info_path.parent.name if info_path.parent.parent.name == "snapshots" else revision


def _link(chain: tuple[str, ...], repo_id: str, commit: str) -> tuple[str, ...]:
    """`chain` with this repository added, refusing a chain of bases that loops back."""
    if any(link.partition("@")[0] == HUB_PREFIX + repo_id for link in chain):
        raise RewritingError(
            f"{chain[0]}: its chain of base models comes back to {HUB_PREFIX}{repo_id}"
        )
    return (*chain, f"{HUB_PREFIX}{repo_id}@{commit}")


def _check_digest(state: dict[str, Any], recorded: Any, spec: str, what: str) -> str:
    """The digest of `state`, refusing one that differs from what edit.json records."""
    digest = state_digest(state)
    if digest != recorded:
        raise RewritingError(
            f"{spec}: the {what} do not match the digest its {EDIT_FILE} records "
            f"({digest[:12]} != {str(recorded)[:12]}); the repository is damaged or its base "
            "model changed"
        )
    return digest


def _deltas(
    info: dict[str, Any], repo_id: str, commit: str, progress: Progress | None
) -> list[Delta]:
    """The deltas of a repository in the order they apply: its one, or each of its stack's."""
    if not is_stack(info):
        return [Delta.load(resolve(HubFile(repo_id, DELTA_FILE, commit), progress))]
    names = [STACK_DELTA.format(i + 1) for i in range(len(info["edits"]))]
    return [Delta.load(resolve(HubFile(repo_id, name, commit), progress)) for name in names]


def load_hub_stack(spec: str, progress: Progress | None = None) -> EditStack:
    """The edits of `hub:OWNER/NAME[@REVISION]` as a stack on its base model, each revertible.

    A repository of one edit (format /1) is its edited model with no edits to revert. A stack
    with full weights rebuilds its base from them and the base values of the edited tensors;
    a delta-only stack loads its base like `load_hub`. Either way the restored stack must give
    the published weights bit for bit.
    """
    repo_id, revision = parse_spec(spec)
    info_path = resolve(HubFile(repo_id, EDIT_FILE, revision), progress)
    info = read_edit_info(info_path, spec)
    if not is_stack(info):
        return EditStack(load_hub(spec, progress))
    edited = load_hub(spec, progress)
    commit = _commit(info_path, revision)
    base, deltas = loader.shared(
        _key("stack", repo_id, commit),
        lambda: _stack(info, spec, edited, repo_id, commit, progress),
    )
    return EditStack(base, list(deltas))


def _stack(
    info: dict[str, Any], spec: str, edited: Generator, repo_id: str, commit: str,
    progress: Progress | None,
) -> tuple[Generator, list[Delta]]:
    """The base and deltas of a published stack, checked to give its published weights."""
    deltas = _deltas(info, repo_id, commit, progress)
    if info["files"].get("weights"):
        found = _rebuilt_base(info, spec, edited, repo_id, commit, deltas, progress)
    else:
        base = _load_base(info["base"], info["family"], _link((), repo_id, commit), progress)
        found = (base, deltas)
    _check_digest(EditStack(*found).state_dict(), info["edited_weights_sha256"], spec,
                  "weights its edits give")
    return found


def _rebuilt_base(
    info: dict[str, Any], spec: str, edited: Generator, repo_id: str, commit: str,
    deltas: list[Delta], progress: Progress | None,
) -> tuple[Generator, list[Delta]]:
    """The base of a full-weights stack, from the edited weights and the edited tensors' base
    values, named after the repository and identified by its own digest; the deltas are bound
    to it."""
    originals = read_checkpoint(resolve(HubFile(repo_id, BASE_WEIGHTS_FILE, commit), progress))
    state = {k: v.detach().cpu() for k, v in edited.net.state_dict().items()}
    touched = {d.weight for d in deltas}
    if set(originals) != touched or not touched <= set(state):
        raise RewritingError(
            f"{spec}: its {BASE_WEIGHTS_FILE} holds {sorted(originals)[:4]}, not the tensors "
            f"its edits change {sorted(touched)[:4]}"
        )
    state.update(originals)
    digest = _check_digest(state, info["base_state_sha256"], spec, "base weights")
    # Named apart from the catalog model it claims to be: nothing vouches for that but itself.
    name = f"{info['base']['model']} (base of {HUB_PREFIX}{repo_id})"
    generator = build_published(info, state, digest, name,
                                HubFile(repo_id, BASE_WEIGHTS_FILE, commit))
    bound = [dataclasses.replace(d, model=generator.name, weights_sha256=digest) for d in deltas]
    return generator, bound


def load_any(name: str, progress: Progress | None = None) -> Generator:
    """A catalog model by name, or an edited model published on the Hub (`hub:OWNER/NAME`)."""
    if name.startswith(HUB_PREFIX):
        return load_hub(name, progress)
    return loader.load_model(name, progress)


def load_any_stack(name: str, progress: Progress | None = None) -> EditStack:
    """A model with its edits: a published stack restored (`load_hub_stack`), or no edits."""
    if name.startswith(HUB_PREFIX):
        return load_hub_stack(name, progress)
    return EditStack(loader.load_model(name, progress))
