"""Publish an edit, or a stack of edits, on the Hub in one commit: weights, deltas, provenance,
pictures and model card.

`publish` takes the folder `python -m rewriting edit` wrote, or several such folders made one
on top of the other (a stack, loaded back with each edit revertible). It builds every file
locally first, then creates the repository and pushes all files in a single commit, which the
Hub applies whole or not at all. An existing repository is refused unless `exist_ok` is set
(the edit then lands as a new commit on top of what is there). The token is only handed to the
client: it is never printed, logged, or written into a file, card or error message.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError
from safetensors.torch import save_file
from torch import Tensor

from plugins.base import HubFile
from rewriting import __version__
from rewriting.checksum import state_digest
from rewriting.delta import Delta, EditStack
from rewriting.editdir import DELTA_FILE, PICTURE_FILE, REQUEST_FILE, before_after
from rewriting.errors import RewritingError
from rewriting.generator import Generator
from rewriting.limits import read_json_file
from rewriting.metrics import held_out_samples

from .card import model_card, stack_card
from .fetch import Progress, hub_endpoint
from .hub import (
    BASE_WEIGHTS_FILE,
    EDIT_FILE,
    EDIT_FORMAT,
    HUB_PREFIX,
    MAX_STACK,
    STACK_DELTA,
    STACK_FORMAT,
    STACK_PICTURE,
    WEIGHTS_FILE,
    build_published,
    load_any,
    parse_spec,
    provenance,
)
from .hub_stats import stage_stats
from .registry import list_models

TOKEN_HELP = "create one with write access at https://huggingface.co/settings/tokens"


def edit_info(
    delta: Delta, request: dict[str, Any], stack: EditStack, digest: str, delta_only: bool
) -> dict[str, Any]:
    """The contents of edit.json: the request and everything needed to trace and reload it."""
    base = stack.generator
    return {
        "format": EDIT_FORMAT,
        "tool_version": __version__,
        "family": base.family,
        "default_layer": base.default_layer,
        "edited_weights_sha256": digest,
        "files": {
            "weights": None if delta_only else WEIGHTS_FILE,
            "delta": DELTA_FILE,
            "picture": PICTURE_FILE,
        },
        "base": provenance(base),
        "edit": {
            "layer": delta.layer,
            "weight": delta.weight,
            "rank": delta.rank,
            "method": delta.method,
            "metrics": delta.metrics,
        },
        "request": request,
    }


def _read_edit_dir(edit_dir: Path) -> tuple[Delta, dict[str, Any]]:
    for name in (DELTA_FILE, REQUEST_FILE, PICTURE_FILE):
        if not (edit_dir / name).is_file():
            raise RewritingError(
                f"{edit_dir} has no {name}: give the folder that "
                "`python -m rewriting edit REQUEST --out DIR` wrote"
            )
    request = read_json_file(edit_dir / REQUEST_FILE, "edit request")
    return Delta.load(edit_dir / DELTA_FILE), request


def _refusal(
    err: Exception, token: str, repo_id: str, created: bool, committing: bool
) -> RewritingError:
    """A clear message for a failed Hub call, with the token scrubbed from anything quoted."""
    endpoint = hub_endpoint()
    status = err.response.status_code if isinstance(err, HfHubHTTPError) else None
    detail = getattr(err, "server_message", None) or (str(err).splitlines() or [repr(err)])[0]
    detail = detail.replace(token, "<token>")[:200]
    if status == 401:
        message = (
            f"the Hub at {endpoint} rejected the token (HTTP 401): it is invalid or expired; "
            f"set HF_TOKEN to a valid token ({TOKEN_HELP})"
        )
    elif status == 403:
        message = f"the token may not write to {repo_id} (HTTP 403: {detail}); {TOKEN_HELP}"
    elif status == 409 and not committing:
        message = (
            f"{repo_id} already exists on the Hub; to add this edit to it as a new commit "
            "(replacing files of the same names), pass --exist-ok"
        )
    else:
        reason = f"HTTP {status}: {detail}" if status else f"cannot reach {endpoint}: {detail}"
        message = f"publishing to {repo_id} failed ({reason})"
        if committing:
            rerun = " with --exist-ok (the repository itself was created)" if created else ""
            message += (
                f"; a Hub commit lands whole or not at all, so {repo_id} holds none of these "
                f"files: run the same command again{rerun}"
            )
    return RewritingError(message)


def check_repo_id(repo_id: str) -> str:
    """The repository to publish to (OWNER/NAME, no revision), stripped; refused otherwise."""
    name = repo_id.strip()
    if not name:
        raise RewritingError("type the repository to publish to, as OWNER/NAME")
    if "@" in name:
        raise RewritingError(f"bad repository {name!r}: write OWNER/NAME, without a revision")
    try:
        parse_spec(HUB_PREFIX + name)
    except RewritingError:
        raise RewritingError(f"bad repository {name!r}: write OWNER/NAME") from None
    return name


def publish(
    edit_dirs: str | Path | Sequence[str | Path],
    repo_id: str,
    token: str | None,
    *,
    private: bool = False,
    delta_only: bool = False,
    exist_ok: bool = False,
    progress: Progress | None = None,
    base: Generator | None = None,
    with_stats: bool = False,
) -> CommitInfo:
    """Push the edit in `edit_dirs` (a folder), or the stack of edits in several folders (in
    the order made), to the Hub repository `repo_id` (OWNER/NAME) in one commit.

    `base` is the model the edits were made on when the caller holds it (the app's session);
    by default, and always for a delta-only repository, it is loaded by the deltas' model name.
    `with_stats` adds the published model's key statistics at every edited layer.
    """
    repo_id = check_repo_id(repo_id)
    if not token:
        raise RewritingError(f"publishing needs a Hub token: set HF_TOKEN ({TOKEN_HELP})")
    folders = [Path(edit_dirs)] if isinstance(edit_dirs, (str, Path)) else [
        Path(d) for d in edit_dirs
    ]
    if not 1 <= len(folders) <= MAX_STACK:
        raise RewritingError(f"give 1 to {MAX_STACK} edit folders, got {len(folders)}")
    edits = [_read_edit_dir(folder) for folder in folders]
    for index, (folder, (delta, _)) in enumerate(zip(folders, edits, strict=True)):
        stacked_on = delta.metrics.get("stacked_on")
        if stacked_on is not None and stacked_on != index:
            raise RewritingError(
                f"{folder} holds an edit made on top of {stacked_on} earlier edit(s), but it is "
                f"number {index + 1} of the {len(folders)} given: give the folders of every edit "
                "of the stack, in the order they were made"
            )
    model = edits[0][0].model
    if any(d.model != model or d.weights_sha256 != edits[0][0].weights_sha256 for d, _ in edits):
        raise RewritingError("the edits were made on different models: a stack has one base")
    if delta_only and not model.startswith(HUB_PREFIX) and not list_models(model):
        raise RewritingError(
            f"{model} is not a catalog model: a delta-only repository loads only on top of "
            "a catalog model or a hub: repository, so publish the full weights (no delta-only)"
        )
    generator = base if base is not None and not delta_only else load_any(model, progress)
    stack = EditStack(generator, [delta for delta, _ in edits])
    with tempfile.TemporaryDirectory(prefix="rewriting-push-") as staging:
        stats = _published_stats(Path(staging), stack, repo_id) if with_stats else {}
        if len(folders) == 1:
            files = _single_files(Path(staging), folders[0], edits[0], stack, repo_id, delta_only,
                                  sorted(stats))
            message = f"Rewrite {model} {stack.deltas[0].layer} (rank {stack.deltas[0].rank})"
        else:
            files = _stack_files(Path(staging), folders, edits, stack, repo_id, delta_only,
                                 sorted(stats))
            message = f"Rewrite {model}: a stack of {len(folders)} edits"
        return _commit({**files, **stats}, repo_id, token, private, exist_ok, message)


def _published_stats(staged: Path, stack: EditStack, repo_id: str) -> dict[str, Path]:
    """The key statistics, at each edited layer, of the model as `hub:repo_id` will load."""
    base = stack.generator
    state = stack.state_dict()
    info = {"family": base.family, "default_layer": base.default_layer,
            "base": provenance(base)}
    published = build_published(info, state, state_digest(state), HUB_PREFIX + repo_id,
                                HubFile(repo_id, WEIGHTS_FILE, "main"))
    return stage_stats(staged, published, [d.layer for d in stack.deltas])


def _weights_file(staged: Path, state: dict[str, Tensor], family: str, name: str) -> Path:
    """Tensors written as safetensors into the staging folder."""
    metadata = {"format": "pt", "family": family, "tool_version": __version__}
    save_file(state, staged / name, metadata=metadata)
    return staged / name


def _single_files(
    staged: Path, folder: Path, edit: tuple[Delta, dict[str, Any]], stack: EditStack,
    repo_id: str, delta_only: bool, stats: list[str],
) -> dict[str, Path]:
    """The files of a repository holding one edit, staged (edit.json lists `stats`)."""
    delta, request = edit
    state = stack.state_dict()
    info = edit_info(delta, request, stack, state_digest(state), delta_only)
    if stats:
        info["files"]["stats"] = stats
    (staged / EDIT_FILE).write_text(json.dumps(info, indent=2) + "\n")
    model_card(info, repo_id).save(staged / "README.md")
    files = {
        EDIT_FILE: staged / EDIT_FILE,
        "README.md": staged / "README.md",
        DELTA_FILE: folder / DELTA_FILE,
        PICTURE_FILE: folder / PICTURE_FILE,
    }
    if not delta_only:
        files[WEIGHTS_FILE] = _weights_file(staged, state, info["family"], WEIGHTS_FILE)
    return files


def _stack_files(
    staged: Path, folders: list[Path], edits: list[tuple[Delta, dict[str, Any]]],
    stack: EditStack, repo_id: str, delta_only: bool, stats: list[str],
) -> dict[str, Path]:
    """The files of a repository holding a stack of edits, staged: the full edited weights and
    the base values of the edited tensors (unless delta-only), each delta and picture, the
    whole stack's picture, edit.json (listing `stats`) and the card."""
    base = stack.generator
    state = stack.state_dict()
    truncation = base.check_truncation(edits[-1][1].get("truncation"))
    picture = before_after(base, held_out_samples(12), truncation, {}, stack.weights())
    picture.save(staged / PICTURE_FILE)
    info: dict[str, Any] = {
        "format": STACK_FORMAT,
        "tool_version": __version__,
        "family": base.family,
        "default_layer": base.default_layer,
        "edited_weights_sha256": state_digest(state),
        "files": {"weights": None if delta_only else WEIGHTS_FILE,
                  "base_weights": None if delta_only else BASE_WEIGHTS_FILE,
                  "picture": PICTURE_FILE},
        "base": provenance(base),
        "edits": [],
    }
    if stats:
        info["files"]["stats"] = stats
    files = {PICTURE_FILE: staged / PICTURE_FILE}
    for number, (folder, (delta, request)) in enumerate(zip(folders, edits, strict=True), 1):
        files[STACK_DELTA.format(number)] = folder / DELTA_FILE
        files[STACK_PICTURE.format(number)] = folder / PICTURE_FILE
        info["edits"].append({
            "layer": delta.layer, "weight": delta.weight, "rank": delta.rank,
            "method": delta.method, "strength": delta.strength, "metrics": delta.metrics,
            "request": request, "delta": STACK_DELTA.format(number),
            "picture": STACK_PICTURE.format(number),
        })
    if not delta_only:
        files[WEIGHTS_FILE] = _weights_file(staged, state, base.family, WEIGHTS_FILE)
        originals = {w: base.parameter(w).detach().cpu().contiguous() for w in stack.weights()}
        files[BASE_WEIGHTS_FILE] = _weights_file(staged, originals, base.family,
                                                 BASE_WEIGHTS_FILE)
        base_state = {k: v.detach().cpu() for k, v in base.net.state_dict().items()}
        info["base_state_sha256"] = state_digest(base_state)
    (staged / EDIT_FILE).write_text(json.dumps(info, indent=2) + "\n")
    stack_card(info, repo_id).save(staged / "README.md")
    return {EDIT_FILE: staged / EDIT_FILE, "README.md": staged / "README.md", **files}


def _commit(
    files: dict[str, Path], repo_id: str, token: str, private: bool, exist_ok: bool,
    message: str,
) -> CommitInfo:
    """Create the repository (unless it exists and `exist_ok`) and push `files` in one commit."""
    api = HfApi(endpoint=hub_endpoint(), token=token)
    created = committing = False
    try:
        api.create_repo(repo_id, private=private, exist_ok=exist_ok)
        created, committing = not exist_ok, True
        return api.create_commit(
            repo_id,
            operations=[CommitOperationAdd(name, str(path)) for name, path in files.items()],
            commit_message=message,
            commit_description=f"Published by gan-rewriting {__version__}.",
        )
    except HfHubHTTPError as err:
        raise _refusal(err, token, repo_id, created, committing) from None
    except ValueError as err:  # the Hub refused the card's metadata
        lines = " ".join(str(err).replace(token, "<token>").split())
        raise RewritingError(f"the Hub refused the model card: {lines}") from None
    except Exception as err:  # the client's transport errors (httpx or httpx2, by version)
        raise _refusal(err, token, repo_id, created, committing) from None
