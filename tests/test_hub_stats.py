"""`push --with-stats`: statistics published beside a model, adopted on load when their key
matches it, ignored with a note otherwise (against the loopback Hub, real client)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from hub_server import HubServer, make_edit, use_hub
from huggingface_hub import constants
from safetensors.torch import load, save

import rewriting.stats as stats_module
from rewriting.cli import main
from rewriting.stats import cached_key_stats, compute_key_stats, key_stats
from zoo.hub import load_any

TOKEN = "hf_StatsTokenThatMustNeverShow0123"
STATS = "stats/main.6.safetensors"


@pytest.fixture(scope="module")
def edit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_edit(tmp_path_factory.mktemp("edit") / "eyes")


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    with HubServer({TOKEN: "alice"}) as server:
        use_hub(monkeypatch, server.url, tmp_path / "home")
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield server


def visitor(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """A fresh Hub download cache and statistics cache, as on another machine."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder / "hub"))
    monkeypatch.setenv("REWRITING_CACHE", str(folder / "rewriting"))


def with_metadata(data: bytes, **changes: str) -> bytes:
    """A safetensors file's bytes with some metadata entries changed (tensors kept)."""
    size = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + size])["__metadata__"]
    return save(load(data), metadata={**meta, **changes})


def test_published_stats_are_adopted_when_their_key_matches(
    hub, edit_dir, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("REWRITING_CACHE", str(tmp_path / "pusher"))
    assert main(["push", str(edit_dir), "--repo", "alice/stats", "--with-stats"]) == 0
    assert TOKEN not in "".join(capsys.readouterr())
    files = hub.repo_files("alice/stats")
    assert json.loads(files["edit.json"])["files"]["stats"] == [STATS]
    published = load(files[STATS])

    visitor(monkeypatch, tmp_path / "visitor")
    generator = load_any("hub:alice/stats")
    spec, truncation = generator.layer("main.6"), generator.check_truncation(None)
    cached = cached_key_stats(generator, spec, truncation)
    assert cached is not None
    assert torch.equal(cached.second_moment, published["second_moment"])
    # They are what this machine would compute for the loaded model, bit for bit.
    assert torch.equal(cached.second_moment,
                       compute_key_stats(generator, spec, truncation).second_moment)
    monkeypatch.setattr(stats_module, "compute_key_stats", lambda *a, **k: pytest.fail("computed"))
    assert torch.equal(key_stats(generator, spec, truncation).key_sample, cached.key_sample)

    # The same files under another repository name: the weights digest still matches.
    hub.add_repo("alice/copy", files)
    visitor(monkeypatch, tmp_path / "copy")
    copy = load_any("hub:alice/copy")
    assert cached_key_stats(copy, copy.layer("main.6"), truncation) is not None


CHANGES = [{"weights_sha256": "f" * 64}, {"samples": "999"}, {"layer": "main.3"}, {"seed": "x"}]


def test_published_stats_that_do_not_fit_are_ignored_with_a_note(
    hub, edit_dir, monkeypatch, tmp_path, caplog
):
    monkeypatch.setenv("REWRITING_CACHE", str(tmp_path / "pusher"))
    assert main(["push", str(edit_dir), "--repo", "alice/stats", "--with-stats"]) == 0
    files = hub.repo_files("alice/stats")
    for number, change in enumerate(CHANGES):
        hub.add_repo(f"alice/bad{number}", {**files, STATS: with_metadata(files[STATS], **change)})
        visitor(monkeypatch, tmp_path / f"visitor{number}")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="zoo.hub_stats"):
            generator = load_any(f"hub:alice/bad{number}")
        assert f"ignoring its published statistics {STATS}" in caplog.text, change
        cache = tmp_path / f"visitor{number}" / "rewriting"
        assert not cache.exists() or not list(cache.rglob("*.safetensors")), change
        assert generator.name == f"hub:alice/bad{number}"  # the model itself loads as usual
