"""A copy/paste/context edit end to end on the tiny NVIDIA networks, through the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from rewriting.delta import Delta, EditStack
from rewriting.errors import RewritingError
from rewriting_cli.main import main
from zoo.loader import load_model

ROOT = Path(__file__).parents[2]
# family: the fixture (named by its path, relative to the repository) and a middle layer.
CASES = {
    "stylegan2-ada": ("tests/data/sg2ada_tiny.pkl", "b16.conv0"),
    "stylegan3": ("tests/data/sg3_tiny_t.pkl", "L3_36_32"),
}
BOX = [16, 12, 24, 20]


@pytest.mark.parametrize("family", CASES)
@pytest.mark.slow
def test_edit_through_the_cli_is_selective_and_reverts_exactly(tmp_path, monkeypatch, capsys,
                                                               family):
    model, layer = CASES[family]
    request = {
        "model": model, "layer": layer,
        "copy": {"sample": 1, "mask": [8, 8, 16, 16]},
        "paste": {"sample": 7, "mask": BOX},
        "context": [{"sample": 7, "mask": BOX}, {"sample": 3, "mask": BOX}],
    }
    (tmp_path / "request.json").write_text(json.dumps(request))
    out = tmp_path / "edit"
    monkeypatch.chdir(ROOT)  # the request names the model by its path in the repository
    assert main(["edit", str(tmp_path / "request.json"), "--out", str(out), "--stats-samples",
                 "64", "--held-out", "12", "--show", "2"]) == 0
    assert "selectivity" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == model and metrics["layer"] == layer
    # Selectivity: the edit changes the images where the context fires more than elsewhere
    # (measured with the default joint goal: about 2 on these random-weight networks).
    assert metrics["change_inside"] > 1.5 * metrics["change_outside"] > 0

    generator = _load(model)
    assert generator.family == family
    delta = Delta.load(out / "delta.safetensors")
    assert delta.layer == layer and delta.model == model
    before = generator.parameter(delta.weight).clone()
    base = generator.synthesize(generator.latents([7, 3]), 0.5)
    stack = EditStack(generator, [delta])
    edited = generator.synthesize(generator.latents([7, 3]), 0.5, stack.weights())
    assert (edited - base).abs().max() > 1e-3
    stack.revert(0)
    assert stack.weights() == {}
    assert torch.equal(generator.synthesize(generator.latents([7, 3]), 0.5, stack.weights()), base)
    assert torch.equal(generator.parameter(delta.weight), before)  # the shared base is unchanged
    other = _load(CASES["stylegan3" if family == "stylegan2-ada" else "stylegan2-ada"][0])
    with pytest.raises(RewritingError, match="made for model"):
        EditStack(other, [delta])


def _load(model: str):
    """The model by the path the request names (relative to the repository root)."""
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        return load_model(model)
    finally:
        os.chdir(here)


def test_an_nvidia_edit_pushed_to_the_hub_loads_back(tmp_path, monkeypatch, capsys):
    """The published full weights describe their own architecture, so `hub:` rebuilds them."""
    from hub_server import HubServer, use_hub

    from zoo.hub import load_any

    model = str(ROOT / CASES["stylegan2-ada"][0])
    request = {"model": model, "layer": "b8.conv1",
               "copy": {"sample": 1, "mask": [8, 8, 16, 16]},
               "paste": {"sample": 7, "mask": BOX},
               "context": [{"sample": 7, "mask": BOX}]}
    (tmp_path / "request.json").write_text(json.dumps(request))
    out = tmp_path / "edit"
    assert main(["edit", str(tmp_path / "request.json"), "--out", str(out), "--stats-samples",
                 "64", "--held-out", "8", "--show", "2"]) == 0
    token = "hf_NvidiaEditTokenNeverShown0123"
    with HubServer({token: "alice"}) as server:
        use_hub(monkeypatch, server.url, tmp_path / "home")
        monkeypatch.setenv("HF_TOKEN", token)
        assert main(["push", str(out), "--repo", "alice/sg2-edit"]) == 0
        published = load_any("hub:alice/sg2-edit")
    capsys.readouterr()
    base = _load(model)
    assert published.family == "stylegan2-ada" and published.layers.keys() == base.layers.keys()
    z = base.latents([7, 2])
    edited = base.synthesize(z, 0.5, EditStack(base, [Delta.load(out / "delta.safetensors")])
                             .weights())
    assert torch.equal(published.synthesize(z, 0.5), edited)
    assert not torch.equal(edited, base.synthesize(z, 0.5))


@pytest.mark.parametrize("family", CASES)
@pytest.mark.slow
def test_a_session_on_a_local_nvidia_file_edits_publishes_and_loads_back(tmp_path, monkeypatch,
                                                                         family):
    """The app's session helpers on a file path (which visitors may not name), pushed to the
    loopback Hub with NVIDIA's license in the card, and loaded back as `hub:`."""
    from hub_server import HubServer, use_hub

    from rewriting.request import Selection
    from rewriting.stats import key_stats
    from rewriting_app import session as ss
    from zoo.hub import load_any

    model, layer = str(ROOT / CASES[family][0]), CASES[family][1]
    with pytest.raises(RewritingError, match="unknown model"):
        ss.Session.start(model)  # a visitor cannot name a file on the server
    session = ss.Session.start(model, allow_local=True).with_layer(layer)
    for role, sample, mask in (("copy", 1, [8, 8, 16, 16]), ("paste", 7, BOX),
                               ("context", 7, BOX), ("context", 3, BOX)):
        session = session.with_selection(role, Selection(sample, mask))
    stats = key_stats(session.generator, session.spec, session.truncation, samples=64,
                      cache_dir=tmp_path / "stats")
    edited, metrics = ss.run_edit(session, session.request(), stats)
    assert metrics["change_inside"] > 2 * metrics["change_outside"] > 0
    token = "hf_NvidiaSessionTokenNeverShown01"
    with HubServer({token: "alice"}) as server:
        use_hub(monkeypatch, server.url, tmp_path / "home")
        with pytest.raises(RewritingError, match="not a catalog model: a delta-only"):
            ss.publish_edit(edited, "alice/delta-only", token, tmp_path / "a", delta_only=True)
        assert "alice/delta-only" not in server.repos
        ss.publish_edit(edited, f"alice/{family}-edit", token, tmp_path / "b")
        card = server.repos[f"alice/{family}-edit"].snapshot("main")[1]["README.md"].decode()
        published = load_any(f"hub:alice/{family}-edit")
    assert "license: other" in card and "nvidia-source-code-license-nc" in card
    assert published.family == family
    z = session.generator.latents([7, 2])
    assert torch.equal(published.synthesize(z, 0.5), session.generator.synthesize(
        z, 0.5, edited.weights()))
