"""Hostile `hub:` repositories on the loopback Hub: no fetch, import or read they name, no loop.

An audit hook watches the whole process while a repository loads: every file opened, module
imported and socket connected. A repository may only reach the Hub it is on and the sources the
catalog itself names.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch
from hub_server import HubServer, make_edit, use_hub

from rewriting.errors import RewritingError
from rewriting.render import render
from zoo.hub import MAX_BASE_DEPTH, load_any
from zoo.publish import publish

TOKEN = "hf_test_hostile_token"
PROBE_PACKAGE = "hostile_probe_package"
_watching: list[tuple[str, str]] | None = None


def _audit(event: str, args: tuple) -> None:
    if _watching is None:
        return
    if event == "open" and args and isinstance(args[0], (str, bytes, Path)):
        _watching.append(("open", str(Path(str(args[0])).resolve()) if args[0] else ""))
    elif event == "import" and args:
        _watching.append(("import", str(args[0])))
    elif event == "socket.connect" and len(args) > 1 and isinstance(args[1], tuple):
        _watching.append(("connect", f"{args[1][0]}:{args[1][1]}"))


sys.addaudithook(_audit)


@pytest.fixture
def watch():
    """Everything the process opens, imports and connects to while the fixture is active."""
    global _watching
    _watching = []
    try:
        yield _watching
    finally:
        _watching = None


@pytest.fixture(scope="module")
def edit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_edit(tmp_path_factory.mktemp("edit") / "eyes")


@pytest.fixture
def hubs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The loopback Hub, and a second listener that must never be asked anything."""
    with HubServer({TOKEN: "mallory"}) as hub, HubServer() as listener:
        use_hub(monkeypatch, hub.url, tmp_path / "home")
        listener.files["admin"] = b"secret"
        yield hub, listener


def hostile(base: dict, edit_dir: Path) -> dict[str, bytes]:
    """The files of a delta-only repository standing on `base`, with a real delta."""
    info = {
        "format": "gan-rewriting-edit/1", "family": "dcgan",
        "edited_weights_sha256": "0" * 64, "default_layer": "main.6",
        "files": {"weights": None, "delta": "delta.safetensors"}, "base": base,
    }
    delta = (edit_dir / "delta.safetensors").read_bytes()
    return {"edit.json": json.dumps(info).encode(), "delta.safetensors": delta}


def port_of(url: str) -> str:
    return f"127.0.0.1:{urlsplit(url).port}"


@pytest.fixture
def probe_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed package whose import leaves a mark; returns where the mark would be."""
    mark = tmp_path / "imported"
    package = tmp_path / "site" / PROBE_PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"open({str(mark)!r}, 'w').close()\n")
    (package / "w.pt").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return mark


def test_a_base_source_from_edit_json_is_never_fetched_imported_or_read(
    hubs, edit_dir, probe_package, watch, tmp_path
):
    hub, listener = hubs
    secret = tmp_path / "outside" / "weights.tar"
    secret.parent.mkdir()
    secret.write_bytes(b"not for you")
    package_root = Path(__import__("gan_face_generate").__file__).parent
    bases = {
        "url": {"type": "UrlFile", "url": f"{listener.url}/files/admin?secret=1", "sha256": None},
        "package": {"type": "PackageFile", "package": PROBE_PACKAGE, "resource": "w.pt"},
        "dotdot": {"type": "PackageFile", "package": "gan_face_generate",
                   "resource": "../" * len(package_root.parts) + str(secret).lstrip("/")},
        "local": {"type": "LocalFile", "path": str(secret)},
        "hubfile": {"type": "HubFile", "repo_id": "mallory/other", "filename": "w.pt",
                    "revision": "main", "sha256": None},
    }
    watch.clear()  # from here on, only what loading does
    for kind, source in bases.items():
        base = {"model": "weights-only-here", "family": "dcgan", "source": source}
        hub.add_repo(f"mallory/{kind}", hostile(base, edit_dir))
        with pytest.raises(RewritingError) as failure:
            load_any(f"hub:mallory/{kind}")
        message = str(failure.value)
        assert "\n" not in message and "not in this installation's catalog" in message, message

    assert listener.requests == []
    assert not probe_package.exists() and PROBE_PACKAGE not in sys.modules
    assert ("connect", port_of(listener.url)) not in watch
    assert ("import", PROBE_PACKAGE) not in watch
    assert ("open", str(secret.resolve())) not in watch
    inside = str(package_root.resolve()) + "/"
    assert not any(what == "open" and path.startswith(inside) for what, path in watch)
    assert [path for _, path in hub.requests if "mallory/other" in path] == []


def test_a_catalog_base_comes_from_the_catalog_whatever_edit_json_says(
    hubs, edit_dir, probe_package, watch
):
    hub, listener = hubs
    publish(edit_dir, "mallory/eyes", TOKEN, delta_only=True)
    good = load_any("hub:mallory/eyes")
    info = json.loads(hub.repo_files("mallory/eyes")["edit.json"])
    assert info["base"]["model"] == "dcgan-digiface"
    for kind, source in {
        "url": {"type": "UrlFile", "url": f"{listener.url}/files/admin", "sha256": None},
        "package": {"type": "PackageFile", "package": PROBE_PACKAGE, "resource": "w.pt"},
    }.items():
        hub.add_repo(f"mallory/{kind}", {
            **hub.repo_files("mallory/eyes"),
            "edit.json": json.dumps({**info, "base": {**info["base"], "source": source}}).encode(),
        })
        loaded = load_any(f"hub:mallory/{kind}")
        assert torch.equal(render(loaded, [0, 5]), render(good, [0, 5]))
    assert listener.requests == [] and not probe_package.exists()
    assert ("connect", port_of(listener.url)) not in watch

    # The catalog's weights are checked against the ones the edit was made on.
    other = {**info, "base": {**info["base"], "weights_sha256": "f" * 64}}
    hub.add_repo("mallory/other-weights", {**hub.repo_files("mallory/eyes"),
                                           "edit.json": json.dumps(other).encode()})
    with pytest.raises(RewritingError, match="made on other weights than the catalog's"):
        load_any("hub:mallory/other-weights")
    wrong_family = {**info, "family": "stylegan2"}
    hub.add_repo("mallory/family", {**hub.repo_files("mallory/eyes"),
                                    "edit.json": json.dumps(wrong_family).encode()})
    with pytest.raises(RewritingError, match="says family 'stylegan2'"):
        load_any("hub:mallory/family")


def test_loops_and_deep_chains_of_hub_bases_end_in_one_clear_line(hubs, edit_dir):
    hub, _ = hubs
    for name, base in (("self", "self"), ("ping", "pong"), ("pong", "ping")):
        main = {"model": f"hub:mallory/{base}", "source": {"revision": "main"}}
        hub.add_repo(f"mallory/{name}", hostile(main, edit_dir))
    for spec in ("hub:mallory/self", "hub:mallory/ping"):
        with pytest.raises(RewritingError, match="comes back to hub:mallory/"):
            load_any(spec)

    depth = MAX_BASE_DEPTH + 2
    for level in range(depth):
        base = {"model": f"hub:mallory/d{level + 1}", "source": {"revision": "main"}}
        hub.add_repo(f"mallory/d{level}", hostile(base, edit_dir))
    hub.requests.clear()
    with pytest.raises(RewritingError, match=f"deeper than {MAX_BASE_DEPTH} repositories"):
        load_any("hub:mallory/d0")
    fetched = {path.split("/")[2] for _, path in hub.requests if "/resolve/" in path}
    assert fetched == {f"d{level}" for level in range(MAX_BASE_DEPTH + 1)}

    for base, expected in (
        ({"model": "hub:mallory/self"}, "has no valid revision"),
        ({"model": "hub:mallory/self", "source": {"revision": "../../etc"}}, "no valid revision"),
        ({"model": "hub:../../etc/passwd", "source": {"revision": "main"}}, "bad Hub model"),
        ({"model": ["dcgan-digiface"]}, "lacks base.model"),
    ):
        hub.add_repo("mallory/bad", hostile(base, edit_dir))
        with pytest.raises(RewritingError, match=expected):
            load_any("hub:mallory/bad@" + hub.repos["mallory/bad"].commits[-1][0])
