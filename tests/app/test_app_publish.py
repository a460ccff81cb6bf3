"""The app's Publish panel logic: a visitor's edit, or stack of edits, pushed and loaded back."""

from __future__ import annotations

import json
from pathlib import Path

import gradio_client
import httpx
import numpy as np
import pytest
import torch
from app_server import running_app
from hub_server import HubServer, use_hub
from PIL import Image
from safetensors.torch import load_file

from rewriting.checksum import state_digest
from rewriting.errors import RewritingError
from rewriting.render import render
from rewriting.request import parse_request
from rewriting.stats import key_stats
from rewriting_app import publish_policy as app
from rewriting_app import session as ss
from zoo.hub import load_any, load_hub_stack

TOKEN = "hf_app_publish_secret"
EXAMPLES = Path(__file__).parents[2] / "examples"
EXAMPLE = json.loads((EXAMPLES / "eye-to-mouth.json").read_text())
#: A copy/paste, an erase, and a copy/paste on another layer, made one on top of the other.
STACK = [EXAMPLE, json.loads((EXAMPLES / "evaluation" / "6-erase-glasses.json").read_text()),
         {**json.loads((EXAMPLES / "open-mouth.json").read_text()), "layer": "main.9"}]


@pytest.mark.slow
def test_a_session_edit_publishes_and_loads_back_identically(monkeypatch, tmp_path):
    with HubServer({TOKEN: "alice"}) as server:
        use_hub(monkeypatch, server.url, tmp_path / "home")
        session = ss.Session.start("dcgan-digiface")
        with pytest.raises(RewritingError, match="execute an edit first"):
            ss.publish_edit(session, "alice/none", TOKEN, tmp_path / "a")
        edited, _ = ss.run_edit(session, parse_request(EXAMPLE), ss.statistics(session))
        url = ss.publish_edit(edited, " alice/eyes ", TOKEN, tmp_path / "b", delta_only=True)
        assert "alice/eyes" in url

        loaded = load_any("hub:alice/eyes")
        numbers = [0, 7, 1000, 1001]
        mine = render(edited.generator, numbers, None, edited.weights())
        assert torch.equal(render(loaded, numbers), mine)
        visitor = ss.Session.start("hub:alice/eyes")
        assert ss.Session.start("hub:alice/eyes").generator is visitor.generator  # loaded once
        assert torch.equal(render(visitor.generator, numbers), mine)
        saved = ss.save_weights(visitor, tmp_path / "weights")
        assert saved.parent == tmp_path / "weights"
        assert saved.name == "hub_alice_eyes-edited.safetensors"
        assert state_digest(load_file(saved)) == state_digest(loaded.net.state_dict())

        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path


def test_on_a_space_only_the_visitors_login_publishes(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "the-space-owners-token")
    monkeypatch.delenv(app.ALLOW_PUBLISH, raising=False)
    monkeypatch.setattr(app, "ON_SPACE", True)
    with pytest.raises(RewritingError, match="sign in"):
        app.hub_token(None)
    monkeypatch.setattr(app, "ON_SPACE", False)
    for value in (None, "", "0", "yes"):
        if value is not None:
            monkeypatch.setenv(app.ALLOW_PUBLISH, value)
        with pytest.raises(RewritingError, match="publishing is off in this app"):
            app.hub_token(None)
        assert "Publishing is off" in app.publish_help()
    monkeypatch.setenv(app.ALLOW_PUBLISH, "1")
    assert app.hub_token(None) == "the-space-owners-token"
    assert "Publishing is off" not in app.publish_help()


def test_visitors_load_hub_models_without_the_servers_token(monkeypatch, tmp_path):
    """A private repository the machine's token can read stays private to visitors."""
    with HubServer({TOKEN: "alice"}) as server:
        use_hub(monkeypatch, server.url, tmp_path / "home")
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        edited, _ = ss.run_edit(ss.Session.start("dcgan-digiface"), parse_request(EXAMPLE),
                                None)
        ss.publish_edit(edited, "alice/secret", TOKEN, tmp_path / "a", private=True)
        assert load_any("hub:alice/secret").name == "hub:alice/secret"  # the owner, by CLI
        asked = len(server.requests)
        with pytest.raises(RewritingError, match="no repository alice/secret"):
            ss.Session.start("hub:alice/secret")
        assert len(server.requests) > asked, "the visitor's load must ask the Hub"
        assert not any(server.authorized[asked:]), "a visitor's request sent the server's token"


@pytest.mark.slow
def test_a_session_stack_publishes_loads_back_and_each_edit_reverts(monkeypatch, tmp_path):
    with HubServer({TOKEN: "alice"}) as server:
        use_hub(monkeypatch, server.url, tmp_path / "home")
        session = ss.Session.start("dcgan-digiface")
        for data in STACK:
            request = parse_request(data)
            session = session.with_layer(request.layer)
            stats = key_stats(session.generator, session.spec, session.truncation, samples=200)
            session, _ = ss.run_edit(session, request, stats)
        url = ss.publish_edit(session, "alice/stack", TOKEN, tmp_path / "a")
        assert "alice/stack" in url
        files = server.repo_files("alice/stack")
        assert {"edits/3/delta.safetensors", "edits/3/before_after.png",
                "base_weights.safetensors", "model.safetensors"} <= set(files)
        assert files["README.md"].decode().count("(edits/") == 3

        visitor = ss.Session.start("hub:alice/stack")
        assert ss.history(visitor) == ss.history(session)
        assert [d.request for d in visitor.stack.deltas] == [d.request
                                                             for d in session.stack.deltas]
        numbers = [0, 7, 1000, 1001]
        edited = ss.samples(session, numbers)
        assert np.array_equal(ss.samples(visitor, numbers), edited)
        for index in range(3):
            without = ss.samples(visitor.reverted(index), numbers)
            assert np.array_equal(without, ss.samples(session.reverted(index), numbers)), index
            assert not np.array_equal(without, edited), index

        # the visitor publishes the loaded stack without its erase; it loads back as two edits
        two = visitor.reverted(1)
        ss.publish_edit(two, "alice/two-rules", TOKEN, tmp_path / "b", exist_ok=False)
        again = ss.Session.start("hub:alice/two-rules")
        assert len(again.stack.deltas) == 2
        assert np.array_equal(ss.samples(again, numbers), ss.samples(two, numbers))
        assert visitor.generator.name == "dcgan-digiface (base of hub:alice/stack)"
        assert ss.model_note(visitor.generator).startswith("an edited dcgan published on the Hub")
        with pytest.raises(RewritingError, match="not a catalog model"):
            ss.publish_edit(two, "alice/delta-only", TOKEN, tmp_path / "c", delta_only=True)
        assert "alice/delta-only" not in server.repos
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_a_delta_only_session_stack_restores_on_the_catalog_model(monkeypatch, tmp_path):
    with HubServer({TOKEN: "alice"}) as server:
        use_hub(monkeypatch, server.url, tmp_path / "home")
        session = ss.Session.start("dcgan-digiface")
        for data in STACK[:2]:
            session, _ = ss.run_edit(session, parse_request(data), ss.statistics(session))
        ss.publish_edit(session, "alice/light", TOKEN, tmp_path / "a", delta_only=True)
        assert "model.safetensors" not in server.repo_files("alice/light")
        visitor = ss.Session.start("hub:alice/light")
        assert visitor.generator is session.generator  # the shared catalog model
        numbers = [3, 1002]
        assert np.array_equal(ss.samples(visitor, numbers), ss.samples(session, numbers))
        assert np.array_equal(ss.samples(visitor.reverted(0), numbers),
                              ss.samples(session.reverted(0), numbers))


@pytest.mark.slow
def test_the_running_apps_publish_panel_pushes_the_visitors_stack(monkeypatch, tmp_path):
    """Three edits through the app's API, then the Publish button's own event: the repository
    holds the stack, which loads back with the same requests and renders what the app showed."""
    from test_app_security import dependency

    from rewriting_lab.app_process import queue_call

    with HubServer({TOKEN: "alice"}) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "home"),
               "REWRITING_ALLOW_PUBLISH": "1", "SPACE_ID": None}
        with running_app(tmp_path, env=env) as url:
            visitor = gradio_client.Client(url, verbose=False, download_files=str(tmp_path))
            # (the API solves with the statistics of the session's layer, main.6: it stays there)
            for data in [*STACK[:2], {**STACK[2], "layer": "main.6"}]:
                metrics, _ = visitor.predict(json.dumps(data), api_name="/execute")
            assert metrics["edits"] == 3
            gallery, _ = visitor.predict("1000-1003", True, api_name="/sample")
            shown = np.stack([np.asarray(Image.open(item["image"]).convert("RGB"))
                              for item in gallery])
            config = httpx.get(url.rstrip("/") + "/config", timeout=30).json()
            messages = queue_call(url, dependency(config, "publish"),
                                [None, "alice/app-stack", False, False, False],
                                visitor.session_hash)
            done = messages[-1]["output"]["data"][0]
            assert "Published 3 edits in one commit" in done, messages
        assert TOKEN not in json.dumps(messages)
        use_hub(monkeypatch, hub.url, tmp_path / "reader")
        restored = load_hub_stack("hub:alice/app-stack")
        assert [d.request["paste"] for d in restored.deltas] == [d["paste"] for d in STACK]
        assert [bool(d.request.get("erase")) for d in restored.deltas] == [False, True, False]
        mine = render(restored.generator, range(1000, 1004), None, restored.weights())
        assert np.array_equal(mine.numpy(), shown)
