"""Whatever the inputs, the tool writes only in the caches, the output folder and the temp folder.

An audit hook records every file the process opens for writing and every rename, removal,
folder creation, permission change and link, with the path resolved. The command line then
runs good commands (so the hook is seen to catch their writes) and every hostile input of the
other tests: requests, deltas, Hub revisions and repository ids, hostile published
repositories. The inputs lie in a folder of their own, which must not be written to either.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from bad_inputs import DELTAS, requests
from hostile_hub import BAD_REPO_IDS, BAD_REVISIONS, HOSTILE_EDIT_JSON
from hub_server import HubServer, make_edit, use_hub
from write_guard import outside, recording

from rewriting.stats import default_cache_dir
from rewriting_cli.main import main
from zoo.loader import load_model


@contextmanager
def recording_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths changed inside, with the temp folder set apart under tmp_path."""
    (tmp_path / "temp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    with recording() as written:
        yield written


def _inputs(folder: Path, edit: Path) -> list[list[str]]:
    """Every hostile command line, with its input files written to `folder` beforehand."""
    folder.mkdir()
    runs = []
    for number, (text, _) in enumerate(requests().values()):
        (folder / f"request-{number}.json").write_text(text)
        runs.append(["edit", str(folder / f"request-{number}.json"), "--out", "bad"])
    digest = load_model("dcgan-digiface").weights_sha256
    for number, (make, _) in enumerate(DELTAS.values()):
        make(digest, folder / f"delta-{number}.safetensors")
        runs.append(["sample", "--edit", str(folder / f"delta-{number}.safetensors")])
    runs += [["sample", "--model", f"hub:alice/eyes@{revision}"] for revision in BAD_REVISIONS]
    runs += [["sample", "--model", f"hub:{repo_id}"] for repo_id in BAD_REPO_IDS]
    runs += [["sample", "--model", f"hub:mallory/bomb{n}"] for n in range(len(HOSTILE_EDIT_JSON))]
    return [run if run[0] == "edit" else [*run, "--samples", "0", "--out", "bad.png"]
            for run in runs]


@pytest.mark.slow
def test_no_input_makes_the_tool_write_outside_its_places(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    with HubServer() as hub:
        use_hub(monkeypatch, hub.url, tmp_path / "home")
        edit = make_edit(tmp_path / "edit")
        delta = (edit / "delta.safetensors").read_bytes()
        for number, (text, _) in enumerate(HOSTILE_EDIT_JSON.values()):
            hub.add_repo(f"mallory/bomb{number}", {"edit.json": text, "delta.safetensors": delta})
        runs = _inputs(tmp_path / "inputs", edit)
        out.mkdir()
        monkeypatch.chdir(out)
        with recording_apart(tmp_path, monkeypatch) as written:
            good = [["sample", "--samples", "0-3", "--out", "grid.png"],
                    ["sample", "--samples", "0-1", "--edit", str(edit / "delta.safetensors"),
                     "--out", "edited.png"]]
            assert [main(argv) for argv in good] == [0, 0]
            assert str(out / "grid.png") in written, "the hook sees the writes"
            statuses = [main(argv) for argv in runs]
            escaped = outside(written, [out, default_cache_dir(), tmp_path / "home",
                                         tmp_path / "temp"])
    capsys.readouterr()
    assert statuses == [2] * len(statuses) and len(statuses) > 150
    assert escaped == []
    assert not (out / "bad").exists() and not (out / "bad.png").exists()
