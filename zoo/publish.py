"""Publish an edit on the Hub in one commit: weights, delta, provenance, picture and model card.

`publish` takes the folder `python -m rewriting edit` wrote. It builds every file locally first,
then creates the repository and pushes all files in a single commit, which the Hub applies whole
or not at all. An existing repository is refused unless `exist_ok` is set (the edit then lands
as a new commit on top of what is there). The token is only handed to the client: it is never
printed, logged, or written into a file, card or error message.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError
from safetensors.torch import save_file

from rewriting import __version__
from rewriting.checksum import state_digest
from rewriting.delta import Delta, EditStack
from rewriting.editdir import DELTA_FILE, PICTURE_FILE, REQUEST_FILE
from rewriting.errors import RewritingError

from .card import model_card
from .fetch import Progress, hub_endpoint
from .hub import (
    EDIT_FILE,
    EDIT_FORMAT,
    HUB_PREFIX,
    WEIGHTS_FILE,
    load_any,
    parse_spec,
    provenance,
)
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
    try:
        request = json.loads((edit_dir / REQUEST_FILE).read_text())
    except ValueError as err:
        raise RewritingError(f"{edit_dir / REQUEST_FILE} is not valid JSON: {err}") from None
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


def publish(
    edit_dir: str | Path,
    repo_id: str,
    token: str | None,
    *,
    private: bool = False,
    delta_only: bool = False,
    exist_ok: bool = False,
    progress: Progress | None = None,
) -> CommitInfo:
    """Push the edit in `edit_dir` to the Hub repository `repo_id` (OWNER/NAME) in one commit."""
    if "@" in repo_id:
        raise RewritingError(f"bad repository {repo_id!r}: write OWNER/NAME, without a revision")
    parse_spec(HUB_PREFIX + repo_id)
    if not token:
        raise RewritingError(f"publishing needs a Hub token: set HF_TOKEN ({TOKEN_HELP})")
    edit_dir = Path(edit_dir)
    delta, request = _read_edit_dir(edit_dir)
    if delta.metrics.get("stacked_on"):
        raise RewritingError(
            f"{edit_dir} holds an edit made on top of {delta.metrics['stacked_on']} earlier "
            "edit(s), which a published model would lack: publish a single edit"
        )
    if delta_only and not delta.model.startswith(HUB_PREFIX) and not list_models(delta.model):
        raise RewritingError(
            f"{delta.model} is not a catalog model: a delta-only repository loads only on top of "
            "a catalog model or a hub: repository, so publish the full weights (no delta-only)"
        )
    stack = EditStack(load_any(delta.model, progress), [delta])
    state = stack.state_dict()
    info = edit_info(delta, request, stack, state_digest(state), delta_only)
    api = HfApi(endpoint=hub_endpoint(), token=token)
    with tempfile.TemporaryDirectory(prefix="rewriting-push-") as staging:
        staged = Path(staging)
        (staged / EDIT_FILE).write_text(json.dumps(info, indent=2) + "\n")
        model_card(info, repo_id).save(staged / "README.md")
        files = {
            EDIT_FILE: staged / EDIT_FILE,
            "README.md": staged / "README.md",
            DELTA_FILE: edit_dir / DELTA_FILE,
            PICTURE_FILE: edit_dir / PICTURE_FILE,
        }
        if not delta_only:
            metadata = {"format": "pt", "family": info["family"], "tool_version": __version__}
            save_file(state, staged / WEIGHTS_FILE, metadata=metadata)
            files[WEIGHTS_FILE] = staged / WEIGHTS_FILE
        created = committing = False
        try:
            api.create_repo(repo_id, private=private, exist_ok=exist_ok)
            created, committing = not exist_ok, True
            return api.create_commit(
                repo_id,
                operations=[CommitOperationAdd(name, str(path)) for name, path in files.items()],
                commit_message=f"Rewrite {delta.model} {delta.layer} (rank {delta.rank})",
                commit_description=f"Published by gan-rewriting {__version__}.",
            )
        except HfHubHTTPError as err:
            raise _refusal(err, token, repo_id, created, committing) from None
        except ValueError as err:  # the Hub refused the card's metadata
            lines = " ".join(str(err).replace(token, "<token>").split())
            raise RewritingError(f"the Hub refused the model card: {lines}") from None
        except Exception as err:  # the client's transport errors (httpx or httpx2, by version)
            raise _refusal(err, token, repo_id, created, committing) from None
