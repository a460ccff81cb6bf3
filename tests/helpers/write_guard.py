"""An audit hook that records every path the process changes: files opened for writing,
renames, removals, new folders, permission changes and links (installed once per process)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: The flags of os.open that let a file be changed.
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
#: Audit events that change the file system, and which of their arguments are paths.
_CHANGING = {
    "os.rename": (0, 1), "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,),
    "os.chmod": (0,), "os.truncate": (0,), "os.symlink": (1,), "os.link": (1,),
    "shutil.rmtree": (0,), "os.chown": (0,), "os.utime": (0,),
}
_written: list[str] | None = None


def _path(value: object, follow: bool = False) -> str | None:
    """The real path changed: a link's target when `follow` (opening), else the link itself."""
    if isinstance(value, int) or value is None:
        return None  # a file descriptor: its opening was recorded
    path = os.path.abspath(os.fsdecode(value))
    if follow:
        return os.path.realpath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _audit(event: str, args: tuple) -> None:
    if _written is None:
        return
    if event == "open" and len(args) >= 3:
        path, mode, flags = args[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITING
        )
        if writing and (found := _path(path, follow=True)):
            _written.append(found)
    elif event in _CHANGING:
        if isinstance(args[-1], int) and args[-1] >= 0:
            return  # relative to a folder opened by descriptor (rmtree's): recorded as a whole
        _written.extend(p for i in _CHANGING[event] if i < len(args) and (p := _path(args[i])))


sys.addaudithook(_audit)


@contextmanager
def recording() -> Iterator[list[str]]:
    """The paths changed inside (Python's own bytecode caches are not written meanwhile)."""
    global _written
    bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    _written = []
    try:
        yield _written
    finally:
        _written, sys.dont_write_bytecode = None, bytecode


def outside(written: Iterable[str], allowed: Iterable[str | Path]) -> list[str]:
    """The paths of `written` that lie in none of the `allowed` folders."""
    roots = [os.path.realpath(a) + os.sep for a in allowed]
    return [p for p in written if not any((p + os.sep).startswith(r) for r in roots)]
