"""Hostile Hub names and published repositories: one line, no request, nothing written.

Revisions and repository ids are refused the same way wherever they come from (typed on the
command line, given to the library, recorded in a published edit.json) before the Hub client
sees them: the client names files after both. A repository whose edit.json is a bomb or lies
about its fields is refused in one line, within the memory budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile_hub import (
    BAD_REPO_IDS,
    BAD_REVISIONS,
    GOOD_REPO_IDS,
    GOOD_REVISIONS,
    HOSTILE_EDIT_JSON,
    edit_json,
)
from hub_server import HubServer, make_edit, use_hub
from refusals import cheap_refusal, refused

from plugins.base import HubFile
from rewriting.limits import check_revision
from zoo.fetch import resolve
from zoo.hub import load_any, load_hub_stack, parse_spec
from zoo.publish import check_repo_id

TOKEN = "hf_test_names_token"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The loopback Hub, with an empty HF_HOME under tmp_path."""
    with HubServer({TOKEN: "mallory"}) as server:
        use_hub(monkeypatch, server.url, tmp_path / "home")
        yield server


@pytest.fixture(scope="module")
def edit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_edit(tmp_path_factory.mktemp("edit") / "eyes")


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_good_names_pass():
    for revision in GOOD_REVISIONS:
        assert parse_spec(f"hub:alice/eyes@{revision}") == ("alice/eyes", revision)
    for repo_id in GOOD_REPO_IDS:
        assert parse_spec(f"hub:{repo_id}") == (repo_id, "main")
        assert check_repo_id(f" {repo_id} ") == repo_id


@pytest.mark.parametrize("revision", BAD_REVISIONS, ids=ascii)
def test_a_typed_revision_is_refused_before_the_hub_is_asked(revision, hub, work, capsys):
    hub.add_repo("alice/eyes", {"edit.json": b"{}"})
    hub.requests.clear()
    spec = f"hub:alice/eyes@{revision}"
    cheap_refusal(lambda: parse_spec(spec), "bad revision|bad Hub model")
    cheap_refusal(lambda: load_any(spec), "bad revision|bad Hub model")
    refused(["sample", "--model", spec, "--samples", "0", "--out", "g.png"],
            "bad revision|bad Hub model", capsys, work)
    assert hub.requests == []
    assert not (work.parent / "home").exists() or not any((work.parent / "home").rglob("refs/*"))


@pytest.mark.parametrize("revision", BAD_REVISIONS, ids=ascii)
def test_the_last_gate_before_the_hub_client_refuses_a_bad_revision(revision, hub):
    cheap_refusal(lambda: resolve(HubFile("alice/eyes", "edit.json", revision)), "bad revision")
    cheap_refusal(lambda: check_revision(revision), "bad revision")
    assert hub.requests == []


@pytest.mark.parametrize("repo_id", BAD_REPO_IDS, ids=ascii)
def test_a_bad_repository_id_is_refused_everywhere(repo_id, hub, work, capsys):
    cheap_refusal(lambda: parse_spec(f"hub:{repo_id}"), "bad Hub model")
    cheap_refusal(lambda: check_repo_id(repo_id), "bad repository|type the repository")
    cheap_refusal(lambda: resolve(HubFile(repo_id, "edit.json", "main")), "bad repository")
    refused(["sample", "--model", f"hub:{repo_id}", "--samples", "0", "--out", "g.png"],
            "bad Hub model", capsys, work)
    assert hub.requests == []


@pytest.mark.parametrize("case", list(HOSTILE_EDIT_JSON))
def test_a_hostile_edit_json_is_refused_in_one_line(case, hub, edit_dir, work, capsys):
    text, message = HOSTILE_EDIT_JSON[case]
    files = {"edit.json": text, "delta.safetensors": (edit_dir / "delta.safetensors").read_bytes(),
             "model.safetensors": b"{}"}
    hub.add_repo("mallory/bomb", files)
    cheap_refusal(lambda: load_any("hub:mallory/bomb"), message)
    cheap_refusal(lambda: load_hub_stack("hub:mallory/bomb"), message)
    refused(["sample", "--model", "hub:mallory/bomb", "--samples", "0", "--out", "g.png"],
            message, capsys, work)


@pytest.mark.parametrize("revision", BAD_REVISIONS[:20], ids=ascii)
def test_a_stored_base_revision_is_checked_like_a_typed_one(revision, hub, edit_dir):
    base = {"model": "hub:mallory/other", "source": {"revision": revision}}
    hub.add_repo("mallory/stored", {
        "edit.json": json.dumps(edit_json(base=base)).encode(),
        "delta.safetensors": (edit_dir / "delta.safetensors").read_bytes(),
    })
    hub.requests.clear()
    cheap_refusal(lambda: load_any("hub:mallory/stored"), "no valid revision")
    assert all("mallory/other" not in path for _, path in hub.requests)
