"""Hostile output paths and statistics caches (issue 22, class 4): one line, nothing replaced.

Every writing command is given an output that is a device, a FIFO, a socket, a symbolic link,
an entry of the wrong kind, a path in /proc or /sys, under a file, in a folder it may not
write, or a name or path too long: each is refused before any work with exit status 2 and one
line, and nothing in the case's folder or the statistics cache changes. A full disk and a
permission error met while writing (injected, and on a real tmpfs where one can be mounted)
end the same way, leaving no temporary and no partial file. Every file written has the
permissions of a new file under the umask; legal long names work; the statistics cache
refuses entries of the wrong kind without ever opening one, checks its key count with its
checksum, and sweeps the temporaries a killed write left.
"""

from __future__ import annotations

import errno
import faulthandler
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from bad_inputs import EXAMPLE, write_good_delta
from memory import REFUSAL_BUDGET_MB, peak_during
from PIL import Image
from refusals import refused, says, snapshot
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from rewriting.atomic import (
    fit_name,
    remove_stale_safetensors_temporaries,
    temporary_name,
    write_atomically,
)
from rewriting.checksum import state_digest
from rewriting.delta import Delta, save_stack
from rewriting.errors import RewritingError
from rewriting.limits import MAX_NAME_BYTES, STALE_TEMPORARY_SECONDS
from rewriting.stats import STATS_SEED, cache_path, key_stats, load_cached, stats_identity
from rewriting_cli.main import main

DATA = Path(__file__).parents[1] / "data"
#: Statistics samples of the cheap commands (the module's cache holds them).
SAMPLES = "8"

# ---- the commands, each with a cheap way to reach its output ----------------------------------

FILE_COMMANDS: dict[str, Callable[[str], list[str]]] = {
    "sample": lambda out: ["sample", "--samples", "0-1", "--out", out],
    "sample --raw": lambda out: ["sample", "--raw", out, "--checkpoint",
                                 str(DATA / "proggan_tiny.pth"), "--family", "proggan",
                                 "--latents", "z.safetensors"],
    "stats": lambda out: ["stats", "--samples", SAMPLES, "--out", out],
    "export": lambda out: ["export", "--edit", "delta.safetensors", "--out", out],
    "project-eval": lambda out: ["project-eval", "--samples", "1", "--steps", "1", "--out", out],
    "bench": lambda out: ["bench", "--json", out],
}
FOLDER_COMMANDS: dict[str, Callable[[str], list[str]]] = {
    "edit": lambda out: ["edit", "good.json", "--out", out, "--stats-samples", SAMPLES,
                         "--held-out", "4", "--show", "2"],
    "render": lambda out: ["render", "--samples", "0-1", "--out", out],
    "project": lambda out: ["project", "photo.png", "--out", out, "--steps", "1", "--starts", "1"],
    "convert": lambda out: ["convert", str(DATA / "sg2ada_tiny.pkl"), "--out", out],
    "evaluate": lambda out: ["evaluate", "--out", out],
}
#: A file each folder command writes into its folder.
FIRST_FILE = {"edit": "delta.safetensors", "render": "000000.png",
              "project": "latent.safetensors", "convert": "model.safetensors",
              "evaluate": "results.json"}
COMMANDS = {**FILE_COMMANDS, **FOLDER_COMMANDS}

LONG_PATH = "/".join(["d" * 200] * 21) + "/out"  # 4220 bytes: over PATH_MAX
NOT_REGULAR = "not a regular file"
FILE_KINDS = {
    "/dev/null": ("/dev/null", "a character device, " + NOT_REGULAR),
    "a FIFO": ("fifo", "a FIFO (named pipe), " + NOT_REGULAR),
    "a socket": ("sock", "a socket, " + NOT_REGULAR),
    "a dangling link": ("dangling", "a symbolic link, " + NOT_REGULAR),
    "a link to a file": ("link", "a symbolic link, " + NOT_REGULAR),
    "a folder": ("adir", "a folder, " + NOT_REGULAR),
    "in /proc": ("/proc/self/comm", "/proc holds the kernel's interfaces"),
    "in /sys": ("/sys/kernel/out", "/sys holds the kernel's interfaces"),
    "under a file": ("afile/out", "afile is a file, not a folder"),
    "under a FIFO": ("fifo/out", "fifo is a FIFO (named pipe), not a folder"),
    "under a dangling link": ("dangling/out", "dangling is a symbolic link to nothing"),
    "a 256-byte name": ("x" * 256, f"file names take at most {MAX_NAME_BYTES}"),
    "a 256-byte name of 2-byte letters": ("\u00e9" * 128, "file names take at most"),
    "a path over PATH_MAX": (LONG_PATH, "its path is too long"),
}
NOT_A_FOLDER = "not a folder"
FOLDER_KINDS = {
    "/dev/null": ("/dev/null", "a character device, " + NOT_A_FOLDER),
    "a FIFO": ("fifo", "a FIFO (named pipe), " + NOT_A_FOLDER),
    "a socket": ("sock", "a socket, " + NOT_A_FOLDER),
    "a dangling link": ("dangling", "a symbolic link to nothing"),
    "a link to a file": ("link", "a file, " + NOT_A_FOLDER),
    "a file": ("afile", "a file, " + NOT_A_FOLDER),
    "in /proc": ("/proc/self/out", "/proc holds the kernel's interfaces"),
    "in /sys": ("/sys/out", "/sys holds the kernel's interfaces"),
    "under a file": ("afile/out", "afile is a file, not a folder"),
    "under a dangling link": ("dangling/out", "dangling is a symbolic link to nothing"),
    "a 256-byte name": ("x" * 256, f"file names take at most {MAX_NAME_BYTES}"),
    "a path over PATH_MAX": (LONG_PATH, "its path is too long"),
}


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, dcgan) -> Path:
    """What the commands read: a good delta, latents, a photo and an edit request."""
    folder = tmp_path_factory.mktemp("inputs")
    write_good_delta(dcgan.weights_sha256, folder / "delta.safetensors")
    save_file({"z": torch.zeros(2, 32)}, str(folder / "z.safetensors"))
    pixels = np.random.default_rng(0).integers(0, 256, (80, 80, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "photo.png")
    (folder / "good.json").write_text(json.dumps(EXAMPLE))
    return folder


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory, dcgan) -> Path:
    """A statistics cache ($REWRITING_CACHE) holding what the cheap commands use (every layer:
    `edit` may try the layers next to the request's)."""
    cache = tmp_path_factory.mktemp("cache")
    truncation = dcgan.check_truncation(None)
    for layer in dcgan.layers:
        key_stats(dcgan, dcgan.layer(layer), truncation, int(SAMPLES), cache_dir=cache / "stats")
    return cache


@pytest.fixture
def work(tmp_path, monkeypatch, inputs, warm_cache) -> Path:
    """The current folder of one case: the inputs, entries of every kind, and its own copy of
    the warm statistics cache (hard links: the cache replaces files, never writes into them)."""
    folder = tmp_path / "work"
    shutil.copytree(inputs, folder)
    shutil.copytree(warm_cache, tmp_path / "cache", copy_function=os.link)
    monkeypatch.setenv("REWRITING_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(folder)
    (folder / "afile").write_text("a file, not a folder\n")
    (folder / "adir").mkdir()
    os.mkfifo(folder / "fifo")
    (folder / "dangling").symlink_to(folder / "nowhere")
    (folder / "link").symlink_to(folder / "afile")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("sock")  # relative: a socket's path may be no longer than 107 bytes
    listener.close()
    return folder


@pytest.fixture
def no_hang():
    """A case that hangs (a FIFO opened) ends the test run with a traceback, not forever."""
    faulthandler.dump_traceback_later(120, exit=True, file=sys.__stderr__)
    yield
    faulthandler.cancel_dump_traceback_later()


def refuses(argv: list[str], message: str, capsys, root: Path, dcgan) -> str:
    """`refused` over the case's whole folder (inputs and cache), the shared model unchanged."""
    before = state_digest(dcgan.net.state_dict())
    line = refused(argv, message, capsys, root)
    assert state_digest(dcgan.net.state_dict()) == before
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    return line


def fails_writing(argv: list[str], message: str, capsys, root: Path, dcgan) -> str:
    """A command whose write fails once its work is done: exit status 2 and one `error:` line
    matching `message`, last (after any progress lines), no traceback, nothing under `root`
    changed, the model unchanged, within the memory budget."""
    before, weights = snapshot(root), state_digest(dcgan.net.state_dict())
    statuses = []
    rise, raised = peak_during(lambda: statuses.append(main(argv)))
    assert raised is None, repr(raised)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert statuses == [2], err
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], err
    assert says(lines[-1], message) and "Traceback" not in err, err
    assert snapshot(root) == before, "something was left behind"
    assert state_digest(dcgan.net.state_dict()) == weights
    assert rise <= REFUSAL_BUDGET_MB, f"the failed write raised the peak memory by {rise:.0f} MB"
    return lines[-1]


# ---- existing entries of the wrong kind, system folders, lengths: refused up front ------------


@pytest.mark.parametrize("kind", list(FILE_KINDS))
@pytest.mark.parametrize("command", list(FILE_COMMANDS))
def test_file_outputs_of_the_wrong_kind_are_refused(command, kind, work, capsys, dcgan, no_hang):
    path, message = FILE_KINDS[kind]
    refuses(FILE_COMMANDS[command](path), message, capsys, work.parent, dcgan)
    assert stat.S_ISFIFO(os.lstat(work / "fifo").st_mode)
    assert os.readlink(work / "dangling") == str(work / "nowhere")


@pytest.mark.parametrize("kind", list(FOLDER_KINDS))
@pytest.mark.parametrize("command", list(FOLDER_COMMANDS))
def test_folder_outputs_of_the_wrong_kind_are_refused(command, kind, work, capsys, dcgan,
                                                      no_hang):
    path, message = FOLDER_KINDS[kind]
    refuses(FOLDER_COMMANDS[command](path), message, capsys, work.parent, dcgan)


@pytest.mark.parametrize("inside", ["a FIFO", "a folder", "a dangling link", "a socket"])
@pytest.mark.parametrize("command", list(FOLDER_COMMANDS))
def test_an_entry_of_the_wrong_kind_inside_a_folder_output_is_refused(
    command, inside, work, capsys, dcgan, no_hang
):
    target = work / "adir" / FIRST_FILE[command]
    {"a FIFO": lambda: os.mkfifo(target), "a folder": target.mkdir,
     "a dangling link": lambda: target.symlink_to(work / "nowhere"),
     "a socket": lambda: shutil.move(work / "sock", target)}[inside]()
    line = refuses(FOLDER_COMMANDS[command]("adir"), NOT_REGULAR, capsys, work.parent, dcgan)
    assert FIRST_FILE[command] in line


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_folder_this_process_may_not_write_is_refused_up_front(
    command, work, capsys, dcgan, monkeypatch
):
    (work / "locked").mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        False if Path(path).name == "locked" else real(path, mode, **kw)))
    refuses(COMMANDS[command]("locked/out"), "locked is not writable", capsys, work.parent,
            dcgan)


# ---- a full disk or no permission while writing: one line, nothing left -----------------------


def _under(path, root: Path) -> bool:
    """Whether `path` (a path or an open file) lies under `root`."""
    if not isinstance(path, (str, os.PathLike)):
        path = getattr(path, "name", "")  # an open file's path
    return Path(os.path.abspath(path)).is_relative_to(root)


def _first_bytes(path) -> None:
    """Write the start of a file, as a writer does before the disk fills up."""
    with open(path, "wb") as handle:
        handle.write(b"the first bytes")


def fill_the_disk(monkeypatch, root: Path) -> None:
    """Every file the tool writes under `root` (safetensors, PNG, text) fails as on a full
    disk, after its first bytes."""
    real_serialize, real_save, real_write_text = (
        safetensors.torch.serialize_file, Image.Image.save, Path.write_text)
    no_space = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def serialize(tensors, filename, metadata=None):
        if not _under(filename, root):
            return real_serialize(tensors, filename, metadata=metadata)
        _first_bytes(filename)
        raise SafetensorError(f"Error while serializing: I/O error: {no_space.strerror} "
                              f"(os error {errno.ENOSPC})")

    def save_picture(image, fp, format=None, **params):
        if not _under(fp, root):
            return real_save(image, fp, format, **params)
        _first_bytes(fp)
        raise no_space

    def write_text(path, data, *args, **kwargs):
        if not _under(path, root):
            return real_write_text(path, data, *args, **kwargs)
        _first_bytes(path)
        raise no_space

    monkeypatch.setattr(safetensors.torch, "serialize_file", serialize)
    monkeypatch.setattr(Image.Image, "save", save_picture)
    monkeypatch.setattr(Path, "write_text", write_text)


def forbid_folders(monkeypatch, root: Path) -> None:
    """Making any folder under `root` fails for want of permission (as a non-root user would
    find a folder of mode 0500)."""
    real = os.mkdir

    def mkdir(path, mode=0o777, *, dir_fd=None):
        if _under(path, root):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", mkdir)


#: Commands whose whole run a write-failure case pays for; those over ~5 s are marked slow.
WRITING = [
    *FILE_COMMANDS.keys() - {"bench"},
    "edit", "render", "convert", pytest.param("project", marks=pytest.mark.slow),
]
FAILURES = {
    "disk full": (fill_the_disk, os.strerror(errno.ENOSPC)),
    "no permission": (forbid_folders, os.strerror(errno.EACCES)),
}


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("command", WRITING)
def test_a_write_that_fails_leaves_nothing(command, failure, work, capsys, dcgan, monkeypatch):
    if command == "edit":
        # An edit's own work (the search for advice included) keeps layer readings in memory:
        # done once before, the budget holds what the failing write adds.
        assert main(COMMANDS[command]("warm")) == 0
        capsys.readouterr()
    inject, message = FAILURES[failure]
    inject(monkeypatch, work)
    fails_writing(COMMANDS[command]("new/out"), message, capsys, work.parent, dcgan)


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_statistics_cache_write_that_fails_leaves_nothing(
    failure, work, tmp_path, capsys, dcgan, monkeypatch
):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.setenv("REWRITING_CACHE", str(fresh))
    inject, message = FAILURES[failure]
    inject(monkeypatch, fresh)
    line = fails_writing(["stats", "--samples", "4"], message, capsys, tmp_path, dcgan)
    assert str(fresh / "stats") in line


@pytest.fixture
def tmpfs(request, work) -> Callable[[str], Path]:
    """Mount a small tmpfs at work/disk with the given options (skipped where not permitted)."""

    def mount(options: str) -> Path:
        disk = work / "disk"
        disk.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(disk)],
                              capture_output=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(disk)], check=True))
        return disk

    return mount


def fill(disk: Path) -> None:
    """Fill a file system to its last byte."""
    handle = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(handle, b"\0" * 4096)
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(handle)


@pytest.mark.parametrize("command", ["sample", "sample --raw", "stats", "export", "render"])
def test_a_real_full_disk_leaves_nothing(command, tmpfs, work, capsys, dcgan):
    fill(tmpfs("size=64k"))
    fails_writing(COMMANDS[command]("disk/out"), os.strerror(errno.ENOSPC), capsys,
                  work.parent, dcgan)


@pytest.mark.parametrize("command", ["sample", "stats", "export", "render", "edit"])
def test_a_real_read_only_file_system_is_refused_up_front(command, tmpfs, work, capsys, dcgan):
    tmpfs("size=64k,ro")
    refuses(COMMANDS[command]("disk/out"), "disk is not writable", capsys, work.parent, dcgan)


# ---- the statistics cache: odd entries refused without being opened --------------------------


def _cache_file(dcgan, layer: str | None = None, samples: str = SAMPLES) -> Path:
    """Where $REWRITING_CACHE keeps a layer's statistics of `samples` samples."""
    meta = stats_identity(dcgan, dcgan.layer(layer), dcgan.check_truncation(None), int(samples),
                          STATS_SEED)
    return cache_path(Path(os.environ["REWRITING_CACHE"]) / "stats", meta)


def _replace(path: Path, make: Callable[[Path], object]) -> None:
    """Put `make`'s entry where `path` was."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    make(path)


CACHE_KINDS: dict[str, tuple[Callable[[Path], Path], Callable[[Path], object], str]] = {
    "the cache a file": (lambda f: f.parent.parent, lambda p: p.write_text("x"),
                         "is a file, not a folder"),
    "its stats folder a file": (lambda f: f.parent, lambda p: p.write_text("x"),
                                "is a file, not a folder"),
    "its stats folder a FIFO": (lambda f: f.parent, os.mkfifo, "is a FIFO (named pipe)"),
    "its stats folder a dangling link": (lambda f: f.parent,
                                         lambda p: p.symlink_to(p.parent / "gone"),
                                         "is a symbolic link to nothing"),
    "the file a folder": (lambda f: f, lambda p: p.mkdir(), "a folder, " + NOT_REGULAR),
    "the file a FIFO": (lambda f: f, os.mkfifo, "a FIFO (named pipe), " + NOT_REGULAR),
    "the file a socket": (lambda f: f, lambda p: shutil.move("sock", p), "a socket"),
    "the file a dangling link": (lambda f: f, lambda p: p.symlink_to(p.parent / "gone"),
                                 "a symbolic link"),
    "the file a link to a FIFO": (lambda f: f, lambda p: p.symlink_to(Path.cwd() / "fifo"),
                                  "a symbolic link"),
    "the file a link to /dev/zero": (lambda f: f, lambda p: p.symlink_to("/dev/zero"),
                                     "a symbolic link"),
}
CACHE_COMMANDS = {
    "stats": lambda: ["stats", "--samples", SAMPLES],
    "stats --out": lambda: ["stats", "--samples", SAMPLES, "--out", "s.safetensors"],
    "edit": lambda: FOLDER_COMMANDS["edit"]("out"),
    "edit --early-stats": lambda: [*FOLDER_COMMANDS["edit"]("out"), "--early-stats", "4"],
}


@pytest.mark.parametrize("kind", list(CACHE_KINDS))
@pytest.mark.parametrize("command", list(CACHE_COMMANDS))
def test_a_cache_entry_of_the_wrong_kind_is_refused_unopened(
    command, kind, work, capsys, dcgan, no_hang
):
    where, make, message = CACHE_KINDS[kind]
    layer = EXAMPLE["layer"] if command.startswith("edit") else None
    _replace(where(_cache_file(dcgan, layer)), make)
    line = refuses(CACHE_COMMANDS[command](), message, capsys, work.parent, dcgan)
    assert "statistics cache" in line


def test_a_cache_in_proc_is_refused(work, capsys, dcgan, monkeypatch, no_hang):
    monkeypatch.setenv("REWRITING_CACHE", "/proc/self")
    refuses(["stats", "--samples", SAMPLES], "/proc holds the kernel's interfaces", capsys,
            work.parent, dcgan)


def test_a_cache_whose_key_count_was_changed_is_recomputed(work, dcgan, capsys):
    path, spec = _cache_file(dcgan), dcgan.layer(None)
    identity = stats_identity(dcgan, spec, dcgan.check_truncation(None), int(SAMPLES),
                              STATS_SEED)
    with safe_open(path, "pt") as handle:
        meta = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    count = int(meta["count"])
    assert load_cached(path, identity, spec.key_channels) is not None
    # A plausible count (a multiple of the samples), the checksum kept as it was; unlinked
    # first, since the file is a hard link to the module's cache.
    path.unlink()
    save_file(tensors, str(path), metadata={**meta, "count": str(count * 2)})
    assert load_cached(path, identity, spec.key_channels) is None
    assert main(["stats", "--samples", SAMPLES]) == 0
    assert f"{count} keys" in capsys.readouterr().out
    assert load_cached(path, identity, spec.key_channels).count == count


def _aged(path: Path, seconds: float) -> Path:
    """`path`, last changed `seconds` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)
    return path


def test_stale_safetensors_temporaries_are_swept_from_the_cache(work, dcgan, tmp_path):
    """A `stats` killed while safetensors wrote leaves its `.tmpXXXXXX`; the next computation
    removes it once stale, and nothing else."""
    stats_dir = tmp_path / "cache" / "stats"
    old = STALE_TEMPORARY_SECONDS + 60
    stale = stats_dir / ".tmpA1b2C3"
    stale.write_bytes(b"\0" * 4096)
    _aged(stale, old)
    fresh = stats_dir / ".tmpD4e5F6"
    fresh.write_bytes(b"a live writer's")
    kept = [fresh]
    for name, make in {".tmpG7h8I9": Path.mkdir, ".tmpShort": Path.touch,
                       ".tmpSevenCh": Path.touch, "tmpJ1k2L3": Path.touch}.items():
        make(stats_dir / name)
        kept.append(_aged(stats_dir / name, old))
    link = stats_dir / ".tmpM4n5O6"
    link.symlink_to(work / "afile")
    kept.append(_aged(link, old))
    assert main(["stats", "--samples", "2"]) == 0
    assert not stale.exists()
    assert all(os.path.lexists(path) for path in kept)
    assert (work / "afile").exists()


def test_the_sweep_passes_over_a_folder_it_cannot_list(tmp_path):
    remove_stale_safetensors_temporaries(tmp_path / "missing")
    (tmp_path / "afile").write_text("x")
    remove_stale_safetensors_temporaries(tmp_path / "afile")


# ---- permissions follow the umask for every kind of file --------------------------------------

UMASK_COMMANDS = [
    "sample", "sample --raw", "stats", "export", "project-eval", "edit", "render", "convert",
    pytest.param("project", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
@pytest.mark.parametrize("command", UMASK_COMMANDS)
def test_every_file_written_follows_the_umask(command, umask, work, tmp_path, monkeypatch,
                                              capsys):
    monkeypatch.setenv("REWRITING_CACHE", str(tmp_path / "fresh"))  # its files are new too
    before = set(snapshot(tmp_path))
    previous = os.umask(umask)
    try:
        assert main(COMMANDS[command]("out")) == 0, capsys.readouterr().err
    finally:
        os.umask(previous)
    written = [tmp_path / name for name in set(snapshot(tmp_path)) - before]
    files = [path for path in written if path.is_file()]
    assert files and not [path for path in written if path.name.startswith(".")]
    modes = {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in files}
    assert set(modes.values()) == {oct(0o666 & ~umask)}, modes


def test_library_writers_follow_the_umask(tmp_path, work, dcgan):
    first, second = (Delta.load(work / "delta.safetensors") for _ in range(2))
    previous = os.umask(0o027)
    try:
        first.save(tmp_path / "one.safetensors")
        save_stack([first, second], tmp_path / "stack.safetensors")
    finally:
        os.umask(previous)
    for name in ("one.safetensors", "stack.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640


# ---- long legal names work; temporaries fit NAME_MAX ------------------------------------------

LONG_NAMES = {
    "250 ASCII bytes": "x" * 246 + ".png",
    "255 ASCII bytes": "y" * 251 + ".png",
    "254 bytes of 2-byte letters": "\u00e9" * 125 + ".png",
}


@pytest.mark.parametrize("name", list(LONG_NAMES))
@pytest.mark.parametrize("command", ["sample", "export", "stats", "render", "edit"])
def test_a_long_legal_name_is_written_and_leaves_no_temporary(command, name, work, capsys):
    before = set(os.listdir(work))
    assert main(COMMANDS[command](LONG_NAMES[name])) == 0, capsys.readouterr().err
    assert set(os.listdir(work)) - before == {LONG_NAMES[name]}


def test_temporaries_of_long_names_fit_and_are_swept(tmp_path):
    target = tmp_path / ("z" * MAX_NAME_BYTES)
    name = temporary_name(target).name
    assert len(os.fsencode(name)) <= MAX_NAME_BYTES
    other = temporary_name(tmp_path / ("z" * (MAX_NAME_BYTES - 1) + "q")).name
    assert name.split(".")[1] != other.split(".")[1]  # same start, told apart by the digest
    stem = name.split(".")[1]
    (tmp_path / f".{stem}.{_dead_pid()}.{'1' * 16}.tmp").mkdir()
    write_atomically(target, lambda tmp: Path(tmp).write_bytes(b"done"))
    assert sorted(os.listdir(tmp_path)) == [target.name]
    assert target.read_bytes() == b"done"


def _dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_fit_name_keeps_short_names_and_shortens_long_ones_to_the_byte():
    assert fit_name("short.png", 20) == "short.png"
    for name in ["a" * 300, "\u00e9" * 200, "\U0001f600" * 80]:
        fitted = fit_name(name, 100)
        assert len(os.fsencode(fitted)) == 100 and fit_name(name, 100) == fitted


# ---- library writers refuse the same entries ---------------------------------------------------


@pytest.mark.parametrize("entry", ["fifo", "sock", "dangling", "link", "adir"])
def test_write_atomically_never_replaces_an_entry_of_another_kind(entry, work, no_hang):
    before = os.lstat(work / entry)
    with pytest.raises(RewritingError, match="not a regular file"):
        write_atomically(work / entry, lambda tmp: Path(tmp).write_bytes(b"x"))
    after = os.lstat(work / entry)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert not [name for name in os.listdir(work) if name.startswith(".")]
