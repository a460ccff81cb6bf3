"""The app's Publish panel logic: one edit of a visitor's session, pushed and loaded back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hub_server import HubServer, use_hub
from safetensors.torch import load_file

import app
from rewriting.checksum import state_digest
from rewriting.errors import RewritingError
from rewriting.render import render
from rewriting.request import parse_request
from zoo import session as ss
from zoo.hub import load_any

TOKEN = "hf_app_publish_secret"
EXAMPLE = json.loads((Path(__file__).parents[1] / "examples" / "eye-to-mouth.json").read_text())


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

        twice, _ = ss.run_edit(edited, parse_request(EXAMPLE), ss.statistics(edited))
        with pytest.raises(RewritingError, match="holds one edit"):
            ss.publish_edit(twice, "alice/two", TOKEN, tmp_path / "c")
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
