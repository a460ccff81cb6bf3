"""A small Hugging Face Hub look-alike on 127.0.0.1, for running the real client in tests.

It answers the calls listed in the project's hub protocol notes: whoami, repo creation, README
metadata validation, preupload (always "regular", so file contents come inline in the commit),
commits (applied all at once or not at all), and file metadata and downloads under
`/{repo}/resolve/{revision}/{path}`. It also serves plain files under `/files/` for URL sources.

Switches for failure tests: `reject_tokens` (every token gets 401), `fail_commit` (commits read
their whole body, then answer 500 and change nothing), `corrupt` (downloads come back with one
byte flipped). `requests` logs every (method, path) received.

`use_hub` points the client of this process at a server and a fresh Hugging Face home;
`make_edit` runs a quick `edit` for the Hub tests to publish.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from huggingface_hub import constants

INVALID_TOKEN = "Invalid credentials in Authorization header"
#: Licence ids the real Hub accepts that these tests use ("other" needs a license_name).
LICENSES = {"mit", "apache-2.0", "cc-by-4.0", "cc-by-nc-4.0", "unknown", "other"}
REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class Repo:
    """A model repository: its commits in order, each a full snapshot of the files."""

    private: bool
    commits: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)

    def snapshot(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        if revision == "main":
            return self.commits[-1]
        return next((c for c in self.commits if c[0] == revision), None)


class HubServer:
    """Start with `with HubServer(tokens={"hf_x": "alice"}) as hub:`; `hub.url` is the endpoint."""

    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        self.tokens = dict(tokens or {})
        self.repos: dict[str, Repo] = {}
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        #: Whether each request carried an Authorization header, in the order of `requests`.
        self.authorized: list[bool] = []
        self.reject_tokens = False
        self.fail_commit = False
        self.corrupt = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_repo(self, repo_id: str, files: dict[str, bytes], private: bool = False) -> str:
        """Create or update a repository directly (a new commit); returns the commit id."""
        with self._lock:
            repo = self.repos.setdefault(repo_id, Repo(private))
            current = dict(repo.commits[-1][1]) if repo.commits else {}
            return self._commit(repo, {**current, **files})

    def repo_files(self, repo_id: str) -> dict[str, bytes]:
        """The files at the head of a repository ({} if it does not exist)."""
        repo = self.repos.get(repo_id)
        return dict(repo.commits[-1][1]) if repo else {}

    def _commit(self, repo: Repo, files: dict[str, bytes]) -> str:
        oid = hashlib.sha1(f"{len(repo.commits)}:{sorted(files)}".encode()).hexdigest()
        repo.commits.append((oid, files))
        return oid


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet: the log is `hub.requests`."""

        # -- plumbing ---------------------------------------------------------------------------

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().strip(), 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
            head: bool = False,
        ) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")  # a stopped server must look unreachable
            self.end_headers()
            self.close_connection = True
            if not head:
                self.wfile.write(body)

        def _json(self, status: int, data: Any, code: str | None = None) -> None:
            headers = {"Content-Type": "application/json"}
            if code:
                headers["X-Error-Code"] = code
            self._send(status, json.dumps(data).encode(), headers, self.command == "HEAD")

        def _user(self) -> str | None:
            """The user of the bearer token; '' when no token was sent, None when it is refused."""
            auth = self.headers.get("Authorization", "")
            if not auth:
                return ""
            token = auth.removeprefix("Bearer ").strip()
            if hub.reject_tokens or token not in hub.tokens:
                return None
            return hub.tokens[token]

        def _writer(self) -> str | None:
            """The authenticated user, or None after answering 401."""
            user = self._user()
            if not user:
                self._json(401, {"error": INVALID_TOKEN})
                return None
            return user

        # -- routes -----------------------------------------------------------------------------

        def do_HEAD(self) -> None:  # noqa: N802
            self._route()

        def do_GET(self) -> None:  # noqa: N802
            self._route()

        def do_POST(self) -> None:  # noqa: N802
            self._route()

        def _route(self) -> None:
            path = urlsplit(self.path).path
            hub.requests.append((self.command, path))
            hub.authorized.append(bool(self.headers.get("Authorization")))
            body = self._body() if self.command == "POST" else b""
            post = {
                "/api/repos/create": self._create,
                "/api/validate-yaml": self._validate,
            }
            if self.command == "GET" and path == "/api/whoami-v2":
                self._whoami()
            elif self.command == "POST" and path in post:
                post[path](body)
            elif self.command == "POST" and (m := re.fullmatch(
                r"/api/models/([^/]+/[^/]+)/(preupload|commit)/([^/]+)", path
            )):
                repo_id, action, revision = m.group(1), m.group(2), unquote(m.group(3))
                (self._preupload if action == "preupload" else self._commit)(
                    repo_id, revision, body
                )
            elif self.command in ("GET", "HEAD") and (m := re.fullmatch(
                r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path
            )):
                self._resolve(m.group(1), unquote(m.group(2)), unquote(m.group(3)))
            elif self.command in ("GET", "HEAD") and path.startswith("/files/"):
                data = hub.files.get(unquote(path.removeprefix("/files/")))
                if data is None:
                    self._send(404, b"not found", head=self.command == "HEAD")
                else:
                    self._send(200, _maybe_corrupt(hub, data), head=self.command == "HEAD")
            else:
                self._json(404, {"error": f"no route {self.command} {path}"})

        def _whoami(self) -> None:
            user = self._writer()
            if user:
                self._json(200, {"name": user, "type": "user", "orgs": []})

        def _create(self, body: bytes) -> None:
            user = self._writer()
            if not user:
                return
            data = json.loads(body)
            repo_id = f"{data.get('organization') or user}/{data['name']}"
            if repo_id.split("/")[0] != user:
                self._json(403, {"error": f"you cannot create repositories under {repo_id}"})
                return
            with hub._lock:
                if repo_id in hub.repos:
                    self._json(409, {"error": "You already created this model repo",
                                     "url": f"{hub.url}/{repo_id}"})
                    return
                private = bool(data.get("private")) or data.get("visibility") == "private"
                repo = hub.repos[repo_id] = Repo(private)
                hub._commit(repo, {".gitattributes": b"*.safetensors filter=lfs\n"})
            self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

        def _validate(self, body: bytes) -> None:
            errors = _card_errors(json.loads(body).get("content", ""))
            self._json(400 if errors else 200, {"errors": errors, "warnings": []})

        def _owned(self, repo_id: str) -> Repo | None:
            """The repository if the token's user may write to it; else answers and gives None."""
            user = self._writer()
            if not user:
                return None
            repo = hub.repos.get(repo_id)
            if repo is None or repo_id.split("/")[0] != user:
                self._json(404, {"error": "Repository not found"}, "RepoNotFound")
                return None
            return repo

        def _preupload(self, repo_id: str, revision: str, body: bytes) -> None:
            if self._owned(repo_id) is None:
                return
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                for f in json.loads(body)["files"]
            ]
            self._json(200, {"files": files, "commitOid": None})

        def _commit(self, repo_id: str, revision: str, body: bytes) -> None:
            repo = self._owned(repo_id)
            if repo is None:
                return
            if revision != "main":
                self._json(404, {"error": f"no branch {revision}"}, "RevisionNotFound")
                return
            if hub.fail_commit:
                self._json(500, {"error": "Internal Error: the commit could not be stored"})
                return
            with hub._lock:
                files = dict(repo.commits[-1][1])
                for line in body.splitlines():
                    item = json.loads(line)
                    key, value = item["key"], item["value"]
                    if key == "file":
                        files[value["path"]] = base64.b64decode(value["content"])
                    elif key == "deletedFile":
                        files.pop(value["path"], None)
                    elif key == "deletedFolder":
                        prefix = value["path"].rstrip("/") + "/"
                        files = {k: v for k, v in files.items() if not k.startswith(prefix)}
                    elif key != "header":
                        self._json(400, {"error": f"this test Hub does not take {key!r}"})
                        return
                oid = hub._commit(repo, files)
            self._json(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{oid}", "commitOid": oid})

        def _resolve(self, repo_id: str, revision: str, path: str) -> None:
            repo = hub.repos.get(repo_id)
            user = self._user()
            if repo is None or (repo.private and repo_id.split("/")[0] != user):
                self._json(404, {"error": "Repository not found"}, "RepoNotFound")
                return
            snapshot = repo.snapshot(revision)
            if snapshot is None:
                self._json(404, {"error": f"Invalid rev id: {revision}"}, "RevisionNotFound")
                return
            oid, files = snapshot
            if path not in files:
                self._json(404, {"error": "Entry not found"}, "EntryNotFound")
                return
            data = files[path]
            headers = {"X-Repo-Commit": oid, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
            self._send(200, _maybe_corrupt(hub, data), headers, self.command == "HEAD")

    return Handler


def _maybe_corrupt(hub: HubServer, data: bytes) -> bytes:
    if not hub.corrupt or not data:
        return data
    return data[:-1] + bytes([data[-1] ^ 0xFF])


def _card_errors(content: str) -> list[dict[str, str]]:
    """The checks of the real Hub's README validation that matter to these tests."""
    match = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
    if not match:
        return []
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as err:
        return [{"message": f"invalid YAML: {err}"}]
    errors = []
    license_id = meta.get("license")
    if license_id is not None and license_id not in LICENSES:
        errors.append({"message": f'"license" must be one of {sorted(LICENSES)}'})
    if license_id == "other" and not meta.get("license_name"):
        errors.append({"message": '"license_name" is required when "license" is "other"'})
    base = meta.get("base_model")
    if base is not None and not (isinstance(base, str) and REPO_ID.match(base)):
        errors.append({"message": '"base_model" must be a model id'})
    if not all(isinstance(t, str) for t in meta.get("tags", [])):
        errors.append({"message": '"tags" must be a list of strings'})
    return errors


def use_hub(monkeypatch: pytest.MonkeyPatch, endpoint: str, home: Path) -> None:
    """Point huggingface_hub, in this process, at `endpoint` with an empty HF_HOME `home`.

    The client reads HF_HOME and HF_HUB_OFFLINE once, at import: set what it derived from them.
    """
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_ASSETS_CACHE", str(home / "assets"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def make_edit(out: Path, model: str | None = None) -> Path:
    """The folder `edit` writes for the example request (quick settings), on `model` if given."""
    from rewriting_cli.main import main

    example = Path(__file__).parents[2] / "examples" / "eye-to-mouth.json"
    args = ["edit", str(example), "--out", str(out), "--stats-samples", "100",
            "--held-out", "8", "--show", "4", "--scale", "1"]
    assert main(args + (["--model", model] if model else [])) == 0
    return out
