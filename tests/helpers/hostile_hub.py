"""Hostile Hub names and published edit.json files, each with a fragment of its message."""

from __future__ import annotations

import json

from rewriting.limits import MAX_REQUEST_BYTES
from zoo.hub import MAX_STACK

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


def edit_json(**changes: object) -> dict:
    """A delta-only edit.json on the catalog DCGAN, with `changes` made to it."""
    info = {
        "format": "gan-rewriting-edit/1", "family": "dcgan", "edited_weights_sha256": "0" * 64,
        "default_layer": "main.6", "files": {"weights": None, "delta": "delta.safetensors"},
        "base": {"model": "dcgan-digiface", "license": "mit", "weights_sha256": None},
    }
    info.update(changes)
    return info


def deep_json(levels: int) -> bytes:
    return b'{"format": "gan-rewriting-edit/1", "x": ' + b"[" * levels + b"]" * levels + b"}"


#: edit.json texts that must be refused, and a fragment of the message each gets.
HOSTILE_EDIT_JSON: dict[str, tuple[bytes, str]] = {
    "nested 100000 deep": (deep_json(100_000), "nested more than"),
    "nested 17 deep": (deep_json(17), "nested more than"),
    "over the size limit": (b" " * (MAX_REQUEST_BYTES + 1) + b"{}", "over the limit|bytes"),
    "not JSON": (b"{format: 1", "not valid JSON"),
    "not UTF-8": (b'{"format": "\xff\xfe"}', "not valid JSON"),
    "a list": (b"[]", "not published by this tool"),
    "a number": (b"1e400", "not published by this tool"),
    "null": (b"null", "not published by this tool"),
    "wrong format": (json.dumps(edit_json(format="x/1")).encode(), "not published by this tool"),
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
            json.dumps(edit_json(**{_field: _value})).encode(), f"lacks {_field}"
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
        json.dumps(edit_json(base={**edit_json()["base"], _field: _value})).encode(), _message
    )
for _edits in ([], [{}] * (MAX_STACK + 1), "x", {"1": {}}):
    HOSTILE_EDIT_JSON[f"stack edits={_edits!r:.12}"] = (
        json.dumps(edit_json(format="gan-rewriting-stack/1", edits=_edits)).encode(), "lacks edits"
    )
HOSTILE_EDIT_JSON["stack without base_state_sha256"] = (
    json.dumps(edit_json(format="gan-rewriting-stack/1", edits=[{}],
                     files={"weights": "model.safetensors"})).encode(), "base_state_sha256")
for _stats in (["stats/../../etc.safetensors"], ["stats/\u0430.safetensors"], "stats", [3]):
    HOSTILE_EDIT_JSON[f"stats={_stats!r:.24}"] = (
        json.dumps(edit_json(files={"weights": "model.safetensors", "stats": _stats})).encode(),
        "malformed statistics files|do not match the digest",
    )
