"""Small tensor work on one thread: on a shared CPU, contended multi-threaded BLAS can be ten
times slower than one thread (a rank-one solve: 8-13 s on two busy threads, 1.1 s on one)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_lock = threading.Lock()
_inside = 0
_saved = 1


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with torch on one intra-op thread; the count in use before the first of
    any overlapping blocks (from any Python thread) is restored when the last one leaves."""
    global _inside, _saved
    with _lock:
        if _inside == 0:
            _saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0:
                torch.set_num_threads(_saved)
