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
from hub_server import HubServer, make_edit, use_hub
from refusals import cheap_refusal, refused

from plugins.base import HubFile
from rewriting.limits import MAX_REQUEST_BYTES, check_revision
from zoo.fetch import resolve
from zoo.hub import MAX_STACK, load_any, load_hub_stack, parse_spec
from zoo.publish import check_repo_id

GOOD_REVISIONS = ["main", "v1.0", "release_2", "a" * 40, "refs/pr/12", "x" * 128]
BAD_REVISIONS = [
    "../x", "../../../../../../../tmp/x", "/etc/passwd", "a/../b", "..", ".", "...",
    "main/../../x", "refs/../../x", "refs/pr/0", "refs/pr/1/../x", "refs/pr/", "refs/heads/x",
    "a b", "a\nb", "a\x00b", "a\tb", "ma\u0456n", "\uff4d\uff41\uff49\uff4e", "x" * 129,
    "-rf", ".hidden", "a.lock", "a.", "a~1", "a^", "a:b", "a?b", "a*b", "a[b", "\\x",
    "a\\..\\b", "%2e%2e/x", "", "a@b", "main/", "C:\\x", "~/x",
]
GOOD_REPO_IDS = ["alice/eyes", "a/b", "Alice-1/eyes_2.v3", "a" * 96 + "/" + "b" * 96]
BAD_REPO_IDS = [
    "alice", "alice/", "/eyes", "a/b/c", "\u0430lice/eyes", "alice/\u0435yes", "\uff41lice/eyes",
    "../etc", "alice/..", "alice/../x", "a..b/c", "a--b/c", "-a/b", "a/b-", ".a/b", "a /b",
    "a\tb/c", "a\x00/b", "a" * 97 + "/b", "a/" + "b" * 97, "a:b/c", "a\\b/c", "a/b%2F..", "",
    "a/b\nc", "a//b",
]
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


def _info(**changes: object) -> dict:
    """A delta-only edit.json on the catalog DCGAN, with `changes` made to it."""
    info = {
        "format": "gan-rewriting-edit/1", "family": "dcgan", "edited_weights_sha256": "0" * 64,
        "default_layer": "main.6", "files": {"weights": None, "delta": "delta.safetensors"},
        "base": {"model": "dcgan-digiface", "license": "mit", "weights_sha256": None},
    }
    info.update(changes)
    return info


def _deep(levels: int) -> bytes:
    return b'{"format": "gan-rewriting-edit/1", "x": ' + b"[" * levels + b"]" * levels + b"}"


#: edit.json texts that must be refused, and a fragment of the message each gets.
HOSTILE_EDIT_JSON: dict[str, tuple[bytes, str]] = {
    "nested 100000 deep": (_deep(100_000), "nested more than"),
    "nested 17 deep": (_deep(17), "nested more than"),
    "over the size limit": (b" " * (MAX_REQUEST_BYTES + 1) + b"{}", "over the limit|bytes"),
    "not JSON": (b"{format: 1", "not valid JSON"),
    "not UTF-8": (b'{"format": "\xff\xfe"}', "not valid JSON"),
    "a list": (b"[]", "not published by this tool"),
    "a number": (b"1e400", "not published by this tool"),
    "null": (b"null", "not published by this tool"),
    "wrong format": (json.dumps(_info(format="x/1")).encode(), "not published by this tool"),
    "huge integer": (b'{"format": ' + b"9" * 5000 + b"}", "not valid JSON"),
}
for _field, _values in {
    "family": [7, ["dcgan"], None, "", "d" * 257],
    "edited_weights_sha256": [0, None, {"a": 1}],
    "default_layer": [["main.6"], {"x": 1}, 6, "m" * 257],
    "files": [["delta.safetensors"], "delta", None],
    "base": ["dcgan-digiface", ["dcgan-digiface"], None],
}.items():
    for _value in _values:
        HOSTILE_EDIT_JSON[f"{_field}={_value!r:.20}"] = (
            json.dumps(_info(**{_field: _value})).encode(), f"lacks {_field}"
        )
for _field, _value, _message in [
    ("model", ["dcgan-digiface"], "lacks base.model"),
    ("model", 3, "lacks base.model"),
    ("model", "", "lacks base.model"),
    ("license", {"id": "mit"}, "lacks base.license"),
    ("weights_sha256", 5, "lacks base.license"),
    ("source", "https://example.invalid/w.pt", "lacks base.source"),
    ("source", ["x"], "lacks base.source"),
]:
    HOSTILE_EDIT_JSON[f"base.{_field}={_value!r:.20}"] = (
        json.dumps(_info(base={**_info()["base"], _field: _value})).encode(), _message
    )
for _edits in ([], [{}] * (MAX_STACK + 1), "x", {"1": {}}):
    HOSTILE_EDIT_JSON[f"stack edits={_edits!r:.12}"] = (
        json.dumps(_info(format="gan-rewriting-stack/1", edits=_edits)).encode(), "lacks edits"
    )
HOSTILE_EDIT_JSON["stack without base_state_sha256"] = (
    json.dumps(_info(format="gan-rewriting-stack/1", edits=[{}],
                     files={"weights": "model.safetensors"})).encode(), "base_state_sha256")
for _stats in (["stats/../../etc.safetensors"], ["stats/\u0430.safetensors"], "stats", [3]):
    HOSTILE_EDIT_JSON[f"stats={_stats!r:.24}"] = (
        json.dumps(_info(files={"weights": "model.safetensors", "stats": _stats})).encode(),
        "malformed statistics files|do not match the digest",
    )


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
        "edit.json": json.dumps(_info(base=base)).encode(),
        "delta.safetensors": (edit_dir / "delta.safetensors").read_bytes(),
    })
    hub.requests.clear()
    cheap_refusal(lambda: load_any("hub:mallory/stored"), "no valid revision")
    assert all("mallory/other" not in path for _, path in hub.requests)
