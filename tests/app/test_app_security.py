"""The running app refuses to publish with its own token unless allowed at start, even to a raw
queue call of the private handler, and leaves no download files behind."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import gradio_client
import httpx
import pytest
from app_server import app_log, running_app
from hub_server import HubServer

from rewriting_app import file_cache as app
from rewriting_lab.app_process import queue_call

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_the_servers_own_token"
EXAMPLE = (ROOT / "examples" / "eye-to-mouth.json").read_text()


def dependency(config: dict, elem_id: str) -> int:
    """The fn_index of the click event of the button with this elem_id."""
    button = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == elem_id)
    return next(i for i, d in enumerate(config["dependencies"])
                if [button, "click"] in [list(t) for t in d["targets"]])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("app")
    temp = folder / "tmp"
    temp.mkdir()
    with HubServer({TOKEN: "owner"}) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HOME": str(folder / "home"),
               "TMPDIR": str(temp), "GRADIO_TEMP_DIR": None, "REWRITING_ALLOW_PUBLISH": None,
               "SPACE_ID": None}
        with running_app(folder, env=env) as url:
            yield url, hub, temp, folder
        # Nothing outside Gradio's cache, which deletes what it served after app.CACHE_AGE.
        left = [p for p in temp.rglob("*") if not p.is_relative_to(temp / "gradio")]
        assert left == [], left


@pytest.mark.slow
def test_publishing_with_the_servers_token_is_refused_even_to_raw_calls(served):
    url, hub, _, folder = served
    visitor = gradio_client.Client(url, verbose=False)
    metrics, _ = visitor.predict(EXAMPLE, api_name="/execute")
    assert metrics["edits"] == 1  # an edit there is to publish
    config = httpx.get(url.rstrip("/") + "/config", timeout=30).json()
    panel = next(c for c in config["components"] if c["props"].get("elem_id") == "publish-help")
    assert "Publishing is off" in panel["props"]["value"]
    # Said to a web visitor: who may allow it, without the server's command line.
    assert "whoever runs the server" in panel["props"]["value"]
    assert "REWRITING_ALLOW_PUBLISH" not in panel["props"]["value"]
    assert "python" not in panel["props"]["value"]
    button = next(c for c in config["components"] if c["props"].get("elem_id") == "publish")
    assert button["props"]["interactive"] is False

    hub.requests.clear()
    messages = queue_call(url, dependency(config, "publish"),
                        [None, "owner/stolen", False, True, False], visitor.session_hash)
    warnings = [m.get("log", "") for m in messages if m["msg"] == "log"]
    assert any("publishing is off in this app" in w for w in warnings), (messages, app_log(folder))
    assert hub.requests == [] and "owner/stolen" not in hub.repos
    assert TOKEN not in json.dumps(messages)


@pytest.mark.slow
def test_a_visitor_cannot_name_a_file_on_the_server_as_the_model(served):
    """Files load by path on the command line and in zoo.session with allow_local, never here."""
    url = served[0]
    visitor = gradio_client.Client(url, verbose=False)
    for path in (ROOT / "tests" / "data" / "sg2ada_tiny.pkl", ROOT / "tests" / "data"):
        request = {**json.loads(EXAMPLE), "model": str(path)}
        with pytest.raises(gradio_client.exceptions.AppError, match="unknown model"):
            visitor.predict(json.dumps(request), api_name="/execute")


@pytest.mark.slow
def test_downloads_are_served_from_gradios_cache_and_leave_nothing_else(served):
    url, _, temp, _ = served
    visitor = gradio_client.Client(url, verbose=False)
    visitor.predict(EXAMPLE, api_name="/execute")
    config = httpx.get(url.rstrip("/") + "/config", timeout=30).json()
    for _ in range(2):
        done = queue_call(url, dependency(config, "download-weights"), [None],
                        visitor.session_hash)[-1]
        assert done["success"], done
        served_path = Path(done["output"]["data"][0]["path"])
        assert served_path.is_relative_to(temp / "gradio") and served_path.stat().st_size > 1e6
    outside = [p for p in temp.rglob("*") if p.is_file() and not p.is_relative_to(temp / "gradio")]
    assert outside == []
    weights = [p for p in (temp / "gradio").rglob("*.safetensors")]
    assert len(weights) == 2  # one file per download: no second copy anywhere


def test_download_folders_older_than_the_cache_age_are_removed(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    stale, recent = tmp_path / "rewriting-stale", tmp_path / "rewriting-recent"
    for folder in (stale, recent):
        folder.mkdir()
        (folder / "weights.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / "rewriting-emptied").mkdir()
    (tmp_path / "not-ours").mkdir()
    old = time.time() - app.CACHE_AGE - 60
    for folder in (stale, tmp_path / "rewriting-emptied", tmp_path / "not-ours"):
        os.utime(folder, (old, old))
    fresh = app.download_dir()
    assert fresh.parent == tmp_path and fresh.name.startswith("rewriting-")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["not-ours", "rewriting-recent", fresh.name])
