"""Downloads with the real client from a loopback Hub: cache, hashes, offline use, failures."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hub_server import HubServer, make_edit, use_hub
from huggingface_hub import constants

from plugins.base import HubFile, UrlFile
from rewriting.errors import RewritingError
from rewriting_cli.main import main
from zoo.checkpoint import file_sha256
from zoo.fetch import manual_path, resolve
from zoo.hub import load_any, parse_spec
from zoo.loader import build_from_file
from zoo.publish import publish

ROOT = Path(__file__).parents[2]
TINY = ROOT / "tests" / "data" / "stylegan2_tiny_g_ema.pt"
SHA = file_sha256(TINY)
SOURCE = HubFile("org/tiny", "g_ema.pt", sha256=SHA)
TOKEN = "hf_test_download_token"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    with HubServer({TOKEN: "alice"}) as server:
        use_hub(monkeypatch, server.url, tmp_path / "home")
        server.add_repo("org/tiny", {"g_ema.pt": TINY.read_bytes()})
        server.files[f"tiny-{SHA[:8]}.pt"] = TINY.read_bytes()
        yield server


@pytest.fixture(scope="module")
def edit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_edit(tmp_path_factory.mktemp("edit") / "eyes")


def closed_port_url() -> str:
    """An endpoint on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() or p.is_symlink()]


def test_hub_entry_lands_in_the_hf_cache_verified_and_loads_offline(hub, monkeypatch, tmp_path):
    seen: list[float] = []
    path = resolve(SOURCE, lambda fraction, _label: seen.append(fraction))
    assert path.is_relative_to(tmp_path / "home" / "hub" / "models--org--tiny" / "snapshots")
    assert seen[-1] == 1.0
    generator = build_from_file(path, "stylegan2")
    z = generator.latents([0, 1])
    expected = generator.synthesize(z, 0.7)

    hub.requests.clear()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    again = resolve(SOURCE)
    assert again == path and hub.requests == []
    assert torch.equal(build_from_file(again, "stylegan2").synthesize(z, 0.7), expected)


def test_corrupted_hub_download_is_rejected_and_not_cached(hub, tmp_path):
    hub.corrupt = True
    with pytest.raises(RewritingError, match="sha256 .* removed from the cache"):
        resolve(SOURCE)
    repo = tmp_path / "home" / "hub" / "models--org--tiny"
    assert files_under(repo / "blobs") == [] and files_under(repo / "snapshots") == []
    hub.corrupt = False
    assert file_sha256(resolve(SOURCE)) == SHA


def test_url_source_checks_the_hash_prefix_with_progress(hub, monkeypatch, tmp_path):
    source = UrlFile(f"{hub.url}/files/tiny-{SHA[:8]}.pt", sha256=SHA[:8])
    hub.corrupt = True
    for checked in (source, UrlFile(source.url)):  # the catalog's hash, or the name's prefix
        with pytest.raises(RewritingError, match="corrupt or not the expected file"):
            resolve(checked)
    assert files_under(manual_path(source).parent) == []
    hub.corrupt = False
    seen: list[float] = []
    path = resolve(source, lambda fraction, _label: seen.append(fraction))
    assert path == manual_path(source) and seen[-1] == 1.0
    assert path.is_relative_to(tmp_path / "home" / "assets")
    hub.requests.clear()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert resolve(source) == path and hub.requests == []


def test_unreachable_hub_says_what_to_do_and_a_placed_file_works(monkeypatch, tmp_path):
    use_hub(monkeypatch, closed_port_url(), tmp_path / "home")
    started = time.perf_counter()
    with pytest.raises(RewritingError) as failure:
        resolve(SOURCE)
    assert time.perf_counter() - started < 10  # no retry loop before the message
    message = str(failure.value)
    assert "\n" not in message
    assert "connect to the network" in message and str(manual_path(SOURCE)) in message

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RewritingError, match="HF_HUB_OFFLINE is set"):
        resolve(SOURCE)
    manual_path(SOURCE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(TINY, manual_path(SOURCE))
    assert resolve(SOURCE) == manual_path(SOURCE)


def test_bad_hub_model_names_are_refused():
    assert parse_spec("hub:alice/eyes@v1") == ("alice/eyes", "v1")
    for bad in ("hub:alice", "hub:alice/eyes@a@b", "hub:/eyes", "hub:a b/c"):
        with pytest.raises(RewritingError, match="hub:OWNER/NAME"):
            parse_spec(bad)


@pytest.mark.slow
def test_published_model_loads_from_the_cache_in_a_new_offline_process(
    hub, edit_dir, capsys, tmp_path
):
    publish(edit_dir, "alice/eyes", TOKEN)
    assert main(["sample", "--model", "hub:alice/eyes", "--samples", "0-3",
                 "--out", str(tmp_path / "online.png")]) == 0
    capsys.readouterr()
    hub.requests.clear()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_HUB_")}
    env.update(HF_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", HF_ENDPOINT=hub.url)
    done = subprocess.run(
        [sys.executable, "-m", "rewriting", "sample", "--model", "hub:alice/eyes",
         "--samples", "0-3", "--out", str(tmp_path / "offline.png")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert hub.requests == []
    assert (tmp_path / "offline.png").read_bytes() == (tmp_path / "online.png").read_bytes()


def test_delta_only_repo_fetches_its_base_by_repo_id(hub, edit_dir, capsys, monkeypatch, tmp_path):
    publish(edit_dir, "alice/eyes", TOKEN)
    second = make_edit(tmp_path / "more", model="hub:alice/eyes")
    publish(second, "alice/eyes-more", TOKEN, delta_only=True)
    capsys.readouterr()
    info = json.loads(hub.repo_files("alice/eyes-more")["edit.json"])
    assert info["base"]["model"] == "hub:alice/eyes"
    assert info["base"]["source"]["revision"] == hub.repos["alice/eyes"].commits[-1][0]
    assert "base_model: alice/eyes" in hub.repo_files("alice/eyes-more")["README.md"].decode()

    local = tmp_path / "local.png"
    assert main(["sample", "--model", "hub:alice/eyes", "--edit",
                 str(second / "delta.safetensors"), "--out", str(local)]) == 0
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "fresh"))
    published = tmp_path / "published.png"
    assert main(["sample", "--model", "hub:alice/eyes-more", "--out", str(published)]) == 0
    assert published.read_bytes() == local.read_bytes()
    assert (tmp_path / "fresh" / "models--alice--eyes").is_dir()  # the base came by repo id
    assert load_any("hub:alice/eyes-more").name == "hub:alice/eyes-more"
