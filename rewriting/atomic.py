"""Write a file so that a reader never sees it half-written: a temporary name, then a rename.

The temporary (a file, or a staging folder) sits beside the target as `.NAME.PID.RANDOM.tmp`;
a file is created with the usual permissions (0666 less the umask), so the finished file has
them too. A process killed while writing leaves its temporary behind; the next write to the same
target removes the temporaries of processes that no longer run.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path


def safe_name(name: str) -> str:
    """`name` as one file name: anything but letters, digits, '-', '_' and '.' becomes '_'."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "_"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(path: Path) -> None:
    """Delete the temporaries of `path` left by processes that were killed while writing it."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{16}}\.tmp")
    for item in path.parent.glob(f".{path.name}.*.tmp"):
        match = pattern.fullmatch(item.name)
        if match and not _running(int(match.group(1))):
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)


def temporary_name(path: Path) -> Path:
    """A new name for a temporary of `path`, beside it; stale ones of `path` are removed first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp"


def write_atomically(path: Path, write: Callable[[str], object]) -> None:
    """Call `write(tmp)` on a new temporary file beside `path`, then move it into place."""
    tmp = temporary_name(Path(path))
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
