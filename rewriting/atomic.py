"""Every file the tool writes: checked before any work, then written so that a reader never sees
it half-written (into a private folder beside the target, then renamed into place).

An output is refused up front when it could not be written as asked: an empty path, a path in
/proc or /sys, under a file, in a folder this process may not write, a name or path too long,
or an existing thing that is not a regular file (or, for a folder output, not a folder): a
device, a FIFO, a socket or a symbolic link is never replaced. A write that fails anyway (a
full disk, no permission) is one line and leaves nothing behind: neither the temporary nor a
folder made for it. Every file gets the permissions of a new file (0666 less the umask), even
those safetensors writes (it makes them 0600). The staging folder sits beside the target as
`.NAME.PID.RANDOM.tmp` (NAME shortened to fit the file system's limit); a process killed while
writing leaves it behind, and the next write to the same target removes the staging folders of
processes that no longer run.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from .errors import RewritingError, one_line
from .limits import MAX_NAME_BYTES, MAX_PATH_BYTES, STALE_TEMPORARY_SECONDS, SYSTEM_FOLDERS

#: A writer fills the file whose path it is given.
Writer = Callable[[str], object]
#: Digits of the largest process id (Linux's pid_max is at most 2**22), so that every process
#: shortens a long name to the same stem.
PID_DIGITS = 7
#: What a staging name adds to the stem: ".", ".PID", ".RANDOM" (16 hex digits) and ".tmp".
TEMPORARY_EXTRA_BYTES = 1 + 1 + PID_DIGITS + 1 + 16 + 4
#: Hex digits of the digest that stands for the cut-off end of a shortened name.
NAME_DIGEST_DIGITS = 16
#: The names safetensors gives its own temporaries (the tempfile crate's: ".tmp" and six
#: letters or digits), renamed onto the target when complete.
SAFETENSORS_TEMPORARY = re.compile(r"\.tmp[0-9A-Za-z]{6}")
#: Errors of the file system while writing (rather than, say, of a download feeding the file):
#: a full disk or quota, no permission, a read-only file system, a name or path it refuses.
WRITE_ERRORS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS,
    errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.ENOENT, errno.EEXIST, errno.ELOOP,
    errno.EMLINK, errno.EIO, errno.ENXIO, errno.ETXTBSY, errno.EBUSY, errno.EXDEV,
    errno.ENOTEMPTY,
})
#: Most characters of a path quoted in a message (a longer one is shown by its start and end).
SHOWN_PATH_CHARS = 160
#: Each kind of file system entry, in words.
KINDS = {
    stat.S_IFREG: "a file", stat.S_IFDIR: "a folder", stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
}


def safe_name(name: str) -> str:
    """`name` as one file name: anything but letters, digits, '-', '_' and '.' becomes '_'."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "_"


def fit_name(name: str, room: int) -> str:
    """`name` if it takes at most `room` bytes, else its start and a digest of the whole, in
    exactly `room` bytes (the same name always gives the same result)."""
    raw = os.fsencode(name)
    if len(raw) <= room:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:NAME_DIGEST_DIGITS]
    return f"{os.fsdecode(raw[: room - NAME_DIGEST_DIGITS - 1])}~{digest}"


def _shown(path: Path) -> str:
    """`path` for a message: whole, or its start and end when longer than SHOWN_PATH_CHARS."""
    text = str(path)
    if len(text) <= SHOWN_PATH_CHARS:
        return text
    return f"{text[: SHOWN_PATH_CHARS // 2]}...{text[-SHOWN_PATH_CHARS // 4:]}"


def _kind(mode: int) -> str:
    """What a file system entry of this mode is, in words."""
    return KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _running(pid: int) -> bool:
    """Whether a process of this id runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _stem(path: Path) -> str:
    """The part of `path`'s temporaries' names that names `path` (fits with their additions)."""
    return fit_name(path.name, MAX_NAME_BYTES - TEMPORARY_EXTRA_BYTES)


def remove_stale_temporaries(path: Path) -> None:
    """Delete the temporaries of `path` left by processes that were killed while writing it."""
    stem = _stem(path)
    pattern = re.compile(rf"\.{re.escape(stem)}\.(\d+)\.[0-9a-f]{{16}}\.tmp")
    for item in path.parent.glob(f".{glob.escape(stem)}.*.tmp"):
        match = pattern.fullmatch(item.name)
        if match and not _running(int(match.group(1))):
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)


def remove_stale_safetensors_temporaries(folder: Path) -> None:
    """Delete the temporaries safetensors left in `folder` (its write was killed): regular files
    of its naming, unchanged for STALE_TEMPORARY_SECONDS."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        with suppress(OSError):
            info = entry.stat(follow_symlinks=False)
            if (SAFETENSORS_TEMPORARY.fullmatch(entry.name) and stat.S_ISREG(info.st_mode)
                    and time.time() - info.st_mtime > STALE_TEMPORARY_SECONDS):
                os.unlink(entry.path)


def temporary_name(path: Path) -> Path:
    """A new name for a temporary of `path`, beside it; stale ones of `path` are removed first."""
    path = Path(path)
    remove_stale_temporaries(path)
    return path.parent / f".{_stem(path)}.{os.getpid()}.{secrets.token_hex(8)}.tmp"


def _cannot(path: Path, why: str, into: bool = False) -> RewritingError:
    """The one-line error for an output `path` that cannot be written, and why."""
    return RewritingError(f"cannot write {'into ' if into else ''}{_shown(path)}: {why}")


@contextmanager
def output_errors(path: Path) -> Iterator[None]:
    """Turn a failed write of `path` (a full disk, no permission, safetensors' error) into one
    line; other errors (a download's, say) pass through."""
    try:
        yield
    except SafetensorError as err:
        raise _cannot(path, one_line(err)) from None
    except OSError as err:
        if err.errno not in WRITE_ERRORS:
            raise
        raise _cannot(path, err.strerror or one_line(err)) from None


def check_target(path: Path) -> None:
    """Refuse to replace `path` unless it is absent or a regular file: never a symbolic link,
    a device, a FIFO, a socket or a folder."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise _cannot(path, "a folder on its path is a file") from None
    if not stat.S_ISREG(mode):
        raise _cannot(path, f"it is {_kind(mode)}, not a regular file")


def _check_folder(path: Path) -> None:
    """Refuse a folder output `path` that exists and is not a folder (or a link to one)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.lexists(path):
            raise _cannot(path, "it is a symbolic link to nothing", into=True) from None
        return
    if not stat.S_ISDIR(mode):
        raise _cannot(path, f"it is {_kind(mode)}, not a folder", into=True)


def _check_place(path: Path) -> None:
    """Refuse `path` in /proc or /sys, or under anything but a folder this process may write."""
    for where in {Path(os.path.realpath(path)), path.absolute()}:
        for root in SYSTEM_FOLDERS:
            if where.is_relative_to(root):
                raise _cannot(path, f"{root} holds the kernel's interfaces, not files")
    for parent in path.parents:
        try:
            mode = os.stat(parent).st_mode
        except (FileNotFoundError, NotADirectoryError):
            if os.path.islink(parent):
                raise _cannot(path, f"{_shown(parent)} is a symbolic link to nothing") from None
            continue
        if not stat.S_ISDIR(mode):
            raise _cannot(path, f"{_shown(parent)} is {_kind(mode)}, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise _cannot(path, f"{_shown(parent)} is not writable (no permission, or a "
                                "read-only file system)")
        return


def _check_lengths(path: Path, names: Iterable[str]) -> None:
    """Refuse names over MAX_NAME_BYTES, and paths (the staging folder's included) over
    MAX_PATH_BYTES."""
    for part in (*path.parts, *names):
        size = len(os.fsencode(part))
        if size > MAX_NAME_BYTES:
            raise _cannot(path, f"the name {part[:40]!r}... is {size} bytes; file names take at "
                                f"most {MAX_NAME_BYTES}")
    staging = path.parent / f".{_stem(path)}.{'0' * PID_DIGITS}.{'0' * 16}.tmp"
    size = max(len(os.fsencode(str(staging / name))) for name in (*names, ""))
    if size > MAX_PATH_BYTES:
        raise _cannot(path, f"its path is too long ({size} bytes with the temporary's; the "
                            f"limit is {MAX_PATH_BYTES})")


def check_output(path: str | Path, folder: bool = False, names: Iterable[str] = ()) -> Path:
    """`path` as an output (a file, or a `folder` to hold `names`), refused before any work
    when it cannot be written as asked; see the module's docstring."""
    if not str(path):
        raise RewritingError("the output path is empty")
    path = Path(path)
    names = list(names) if folder else [path.name]
    with output_errors(path):
        _check_lengths(path, names)
        _check_place(path)
        if folder:
            _check_folder(path)
        for name in names:
            check_target(path / name if folder else path)
    return path


@contextmanager
def new_folders(folder: Path) -> Iterator[None]:
    """Make `folder` and its missing parents; when the block fails, remove the ones made here
    that are still empty."""
    missing = []
    for parent in (folder, *folder.parents):
        if os.path.isdir(parent):
            break
        missing.append(parent)
    made = []
    try:
        for parent in reversed(missing):
            with suppress(FileExistsError):
                os.mkdir(parent)
                made.append(parent)
        yield
    except BaseException:
        for parent in reversed(made):
            with suppress(OSError):
                os.rmdir(parent)
        raise


@contextmanager
def staging_folder(path: Path) -> Iterator[Path]:
    """A new private folder beside `path`, removed with all it holds when the block ends."""
    staging = temporary_name(path)
    os.mkdir(staging, 0o700)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_new(path: Path, write: Writer) -> None:
    """Have `write(path)` fill the new file `path`, which then has the permissions of a new
    file (0666 less the umask) whatever `write` did (safetensors makes its files 0600)."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        mode = stat.S_IMODE(os.fstat(handle).st_mode)
    finally:
        os.close(handle)
    write(str(path))
    os.chmod(path, mode)


def write_atomically(path: str | Path, write: Writer) -> None:
    """Have `write(tmp)` fill a new file in a staging folder beside `path`, then move it into
    place; a failure is one line and leaves nothing behind."""
    path = Path(path)
    with output_errors(path):
        check_target(path)
        with new_folders(path.parent), staging_folder(path) as staging:
            write_new(staging / path.name, write)
            os.replace(staging / path.name, path)


def write_folder(out: Path, files: Mapping[str, Writer]) -> None:
    """Write the files (name: writer) into the folder `out` all at once: all staged beside it
    first, then moved in."""
    with output_errors(out):
        for name in files:
            check_target(out / name)
        with new_folders(out), staging_folder(out) as staging:
            for name, write in files.items():
                write_new(staging / name, write)
            for name in files:
                os.replace(staging / name, out / name)


def write_each(out: Path, files: Iterable[tuple[str, Writer]]) -> None:
    """Write the files (name, writer) into the folder `out` one after the other, each whole."""
    with output_errors(out), new_folders(out), staging_folder(out) as staging:
        for name, write in files:
            check_target(out / name)
            write_new(staging / name, write)
            os.replace(staging / name, out / name)


def as_json(data: Any) -> Writer:
    """A writer of `data` as indented JSON text."""
    return lambda path: Path(path).write_text(json.dumps(data, indent=2) + "\n")
