"""Pinned files: a swapped or corrupt file is refused, never cached, and never deleted outside
the cache; atomic writes leave no temporaries and use the usual permissions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import HubServer, use_hub
from huggingface_hub import constants

from plugins.base import HubFile, PackageFile, UrlFile
from plugins.dcgan import WEIGHTS_SHA256
from rewriting.atomic import temporary_name, write_atomically
from rewriting.errors import RewritingError
from rewriting_cli.main import main
from zoo.checkpoint import file_sha256
from zoo.fetch import manual_path, resolve
from zoo.registry import model_entry, pinning

ROOT = Path(__file__).parents[2]
TINY = ROOT / "tests" / "data" / "stylegan2_tiny_g_ema.pt"
OTHER = ROOT / "tests" / "data" / "proggan_tiny.pth"
SHA = file_sha256(TINY)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    with HubServer() as server:
        use_hub(monkeypatch, server.url, tmp_path / "home")
        yield server


def cached_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() or p.is_symlink()]


def test_the_embedded_weights_are_pinned_and_a_swapped_file_is_refused(tmp_path, monkeypatch):
    source = model_entry("dcgan-digiface").source
    assert isinstance(source, PackageFile) and source.sha256 == WEIGHTS_SHA256
    assert file_sha256(resolve(source)) == WEIGHTS_SHA256

    package = tmp_path / "site" / "swapped_weights_package"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    weights = package / "weights.tar"
    shutil.copy(resolve(source), weights)
    (tmp_path / "site" / "outside.tar").write_bytes(b"outside the package")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    copy = PackageFile("swapped_weights_package", "weights.tar", WEIGHTS_SHA256)
    assert resolve(copy) == weights

    # Same size, same modification time, other bytes: still read again and refused.
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(RewritingError, match="not the file the catalog pins"):
        resolve(copy)
    assert weights.read_bytes() == bytes(data)  # refused, but never deleted from a package
    with pytest.raises(RewritingError, match="has no resource"):
        resolve(PackageFile("swapped_weights_package", "../outside.tar"))


def test_a_swapped_hub_file_is_refused_and_not_cached(hub, tmp_path):
    hub.add_repo("org/tiny", {"g_ema.pt": OTHER.read_bytes()})  # a valid checkpoint, not ours
    with pytest.raises(RewritingError, match="not the expected file"):
        resolve(HubFile("org/tiny", "g_ema.pt", sha256=SHA))
    repo = tmp_path / "home" / "hub" / "models--org--tiny"
    assert cached_files(repo / "blobs") == [] and cached_files(repo / "snapshots") == []


def test_a_failed_check_never_deletes_outside_the_cache(hub, monkeypatch, tmp_path):
    victim = tmp_path / "mine" / "precious.pt"
    victim.parent.mkdir()
    victim.write_bytes(b"the user's own file")

    # A copy placed by hand for a URL source, as a link to a file elsewhere.
    source = UrlFile(f"{hub.url}/files/tiny.pt", sha256=SHA)
    placed = manual_path(source)
    placed.parent.mkdir(parents=True, exist_ok=True)
    placed.symlink_to(victim)
    with pytest.raises(RewritingError, match="not the expected file"):
        resolve(source)
    assert not placed.is_symlink() and victim.read_bytes() == b"the user's own file"

    # A Hub cache whose snapshot links out of the cache.
    repo = Path(constants.HF_HUB_CACHE) / "models--org--tiny"
    commit = "a" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit / "g_ema.pt"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(victim)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RewritingError, match="not the expected file"):
        resolve(HubFile("org/tiny", "g_ema.pt", sha256=SHA))
    assert not snapshot.is_symlink() and victim.read_bytes() == b"the user's own file"


@pytest.mark.slow
def test_atomic_writes_use_the_umask_and_clear_a_killed_writers_temporary(tmp_path, capsys):
    target = tmp_path / "out" / "weights.safetensors"
    killed = subprocess.run(
        [sys.executable, "-c",
         "import os, signal, sys; from pathlib import Path; from rewriting.atomic import "
         "write_atomically as w; "
         "w(Path(sys.argv[1]), lambda t: (open(t, 'wb').write(b'x' * 4096), "
         "os.kill(os.getpid(), signal.SIGKILL)))", str(target)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60,
    )
    assert killed.returncode == -9
    left = list(target.parent.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".weights.safetensors.")
    dead_pid = int(left[0].name.split(".")[3])
    staging = tmp_path / "out" / f".edit.{dead_pid}.{'1' * 16}.tmp"  # a killed `edit --out`
    staging.mkdir()
    (staging / "delta.safetensors").write_bytes(b"half")
    assert temporary_name(tmp_path / "out" / "edit").name.startswith(f".edit.{os.getpid()}.")
    assert not staging.exists()
    live = target.parent / f".weights.safetensors.{os.getpid()}.{'0' * 16}.tmp"
    live.write_bytes(b"a write of this process, in progress")

    previous = os.umask(0o027)
    try:
        write_atomically(target, lambda tmp: Path(tmp).write_bytes(b"done"))
        assert main(["sample", "--samples", "0-1", "--out", str(tmp_path / "grid.png")]) == 0
    finally:
        os.umask(previous)
    capsys.readouterr()
    assert sorted(p.name for p in target.parent.iterdir()) == [live.name, target.name]
    assert target.read_bytes() == b"done"
    assert target.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "grid.png").stat().st_mode & 0o777 == 0o640


def test_models_says_which_entries_are_not_pinned(capsys):
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["dcgan-digiface"]["pinned"] and rows["dcgan-digiface"]["pinning"] == "yes: sha256"
    hub_row = rows["stylegan2-church-hub"]
    assert not hub_row["pinned"] and hub_row["pinning"] == "no: no sha256, branch main"
    assert rows["proggan-church"]["pinning"] == "no: 8-hex sha256 prefix"
    assert pinning(HubFile("a/b", "f.pt", "c" * 40, "d" * 64)) == (True, "yes: commit + sha256")
    assert main(["models", "stylegan2*"]) == 0
    table = capsys.readouterr().out
    assert "no: no sha256, branch main" in table
    assert "28 of 28 models are not pinned to a full sha256" in table
