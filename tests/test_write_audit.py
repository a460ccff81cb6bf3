"""Whatever the inputs, the tool writes only in the caches, the output folder and the temp folder.

An audit hook records every file the process opens for writing and every rename, removal,
folder creation, permission change and link, with the path resolved. The command line then
runs good commands (so the hook is seen to catch their writes) and every hostile input of the
other tests: requests, deltas, Hub revisions and repository ids, hostile published
repositories. The inputs lie in a folder of their own, which must not be written to either.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from bad_inputs import DELTAS, requests
from hub_server import HubServer, make_edit, use_hub
from test_hostile_hub_names import BAD_REPO_IDS, BAD_REVISIONS, HOSTILE_EDIT_JSON

from rewriting.cli import main
from rewriting.stats import default_cache_dir
from zoo.registry import load_model

#: The flags of os.open that let a file be changed.
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
#: Audit events that change the file system, and which of their arguments are paths.
_CHANGING = {
    "os.rename": (0, 1), "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,),
    "os.chmod": (0,), "os.truncate": (0,), "os.symlink": (1,), "os.link": (1,),
    "shutil.rmtree": (0,), "os.chown": (0,), "os.utime": (0,),
}
_written: list[str] | None = None


def _path(value: object) -> str | None:
    if isinstance(value, int) or value is None:
        return None  # a file descriptor: its opening was recorded
    return os.path.abspath(os.fsdecode(value))


def _audit(event: str, args: tuple) -> None:
    if _written is None:
        return
    if event == "open" and len(args) >= 3:
        path, mode, flags = args[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITING
        )
        if writing and (found := _path(path)):
            _written.append(found)
    elif event in _CHANGING:
        _written.extend(p for i in _CHANGING[event] if i < len(args) and (p := _path(args[i])))


sys.addaudithook(_audit)


@contextmanager
def recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths written inside (the temp folder set apart under tmp_path)."""
    global _written
    (tmp_path / "temp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # Python's own caches are not ours
    _written = []
    try:
        yield _written
    finally:
        _written = None


def _outside(written: list[str], allowed: list[Path]) -> list[str]:
    roots = [str(Path(a).resolve()) + os.sep for a in allowed]
    return [p for p in written if not any((p + os.sep).startswith(r) for r in roots)]


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
        with recording(tmp_path, monkeypatch) as written:
            good = [["sample", "--samples", "0-3", "--out", "grid.png"],
                    ["sample", "--samples", "0-1", "--edit", str(edit / "delta.safetensors"),
                     "--out", "edited.png"]]
            assert [main(argv) for argv in good] == [0, 0]
            assert str(out / "grid.png") in written, "the hook sees the writes"
            statuses = [main(argv) for argv in runs]
            outside = _outside(written, [out, default_cache_dir(), tmp_path / "home",
                                         tmp_path / "temp"])
    capsys.readouterr()
    assert statuses == [2] * len(statuses) and len(statuses) > 150
    assert outside == []
    assert not (out / "bad").exists() and not (out / "bad.png").exists()
