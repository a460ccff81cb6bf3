"""The files' events: save and load edits or a request, download a delta or weights, publish."""

import json
import tempfile
from pathlib import Path

import gradio as gr

from rewriting.delta import load_stack
from rewriting.errors import RewritingError
from rewriting.limits import read_json_file

from . import session as ss
from .file_cache import download_dir
from .handlers import PROGRESS, current, friendly
from .page import Page
from .panels import FilesPanel, PublishPanel
from .publish_policy import hub_token
from .settings import HEAVY, PRIVATE

NO_EDITS_TO_DOWNLOAD = "there are no edits to download yet: Execute one first"


def edit_file_events(p: Page, f: FilesPanel) -> None:
    """Save all edits as one file; load such a file (moving to its model)."""

    @friendly
    def save_edits(st):
        return str(ss.save_edits(current(st), download_dir()))

    @friendly
    def load_edits(path, st, start):
        deltas = load_stack(path, Path(path).name)
        if not deltas:
            raise RewritingError("that edits file holds no edits")
        session = current(st)
        if session.generator.name != deltas[0].model:
            session = ss.Session.start(deltas[0].model)
        session = session.with_edits(deltas)
        shown = p.everything(session, start)  # said once it is ready: a click may follow
        gr.Info(f"Loaded {len(deltas)} edit(s) on {session.generator.name}.")
        return shown

    f.save_stack_b.click(save_edits, [p.state], f.files, **PRIVATE)
    f.load_stack_b.upload(load_edits, [f.load_stack_b, p.state, p.first], p.every(),
                          **PRIVATE, **HEAVY)


def request_file_events(p: Page, f: FilesPanel) -> None:
    """Save the selections (or the latest edit) as a request JSON; load one back."""

    @friendly
    def save_json(st, r, m, lam):
        session = current(st)
        if session.paste is not None and session.copy is not None:
            data = session.request(int(r), m, lam).to_json()
        elif session.stack.deltas:
            data = session.stack.deltas[-1].request
        else:
            raise RewritingError("nothing to save: make a Copy and a Paste selection first")
        path = download_dir() / "edit.json"
        path.write_text(json.dumps(data, indent=2) + "\n")
        return str(path)

    @friendly
    def load_json(path, st, start):
        session, request = current(st).loaded(read_json_file(path, "edit file"))
        shown = p.loaded(session, request, start)  # said once it is ready: a click may follow
        gr.Info(f"Loaded the edit's marks ({len(session.context)} places where the rule "
                "applies); press Execute to apply it.")
        return shown

    f.save_b.click(save_json, [p.state, p.rank, p.method, p.reg], f.files, **PRIVATE)
    f.load_b.upload(load_json, [f.load_b, p.state, p.first], p.loaded_outputs(), **PRIVATE)


def download_events(p: Page, f: FilesPanel) -> None:
    """Download the latest edit's delta or the full edited weights."""

    @friendly
    def download_delta(st):
        return str(ss.save_delta(current(st), -1, download_dir()))

    @friendly
    def download_weights(st, progress=PROGRESS):
        session = current(st)
        if not session.stack.deltas:
            raise RewritingError(NO_EDITS_TO_DOWNLOAD)
        progress(0.5, desc="Writing the edited weights")
        return str(ss.save_weights(session, download_dir()))

    f.delta_b.click(download_delta, [p.state], f.files, **PRIVATE)
    f.weights_b.click(download_weights, [p.state], f.files, **PRIVATE, **HEAVY)


def publish_events(p: Page, pub: PublishPanel) -> None:
    """Publish with the visitor's (or the allowed local) token; report the repository."""

    @friendly
    def publish_now(st, repo, private, delta_only, exist_ok,
                    oauth: gr.OAuthToken | None = None, progress=PROGRESS):
        token = hub_token(oauth)  # refuses first where publishing is not allowed
        with tempfile.TemporaryDirectory(prefix="rewriting-publish-") as staging:
            url = ss.publish_edit(
                current(st), repo, token, Path(staging), private, delta_only, exist_ok,
                lambda f, msg: progress(f, desc=msg),
            )
        name, count = repo.strip(), len(current(st).stack.deltas)
        return (f"Published {count} edit{'s' if count > 1 else ''} in one commit: "
                f"[{url}]({url}). Anyone can open it here by typing `hub:{name}` as the "
                "model.")

    pub.publish_b.click(publish_now,
                        [p.state, pub.repo_tb, pub.private_cb, pub.delta_cb, pub.exist_cb],
                        pub.published, show_progress_on=pub.published, **PRIVATE, **HEAVY)
