"""A store many threads share, bounded by bytes: the least recently used entries go first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable


class BytesLRU:
    """Values by key, at most `limit` bytes of them as `size` counts; thread-safe. Values are
    shared by every caller, so they are never modified once kept."""

    def __init__(self, limit: int, size: Callable[[object], int]) -> None:
        self.limit, self.size = limit, size
        self._kept: OrderedDict[Hashable, object] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> object | None:
        """The value kept for `key` (now the most recently used), or None."""
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
            return found

    def put(self, key: Hashable, value: object) -> None:
        """Keep `value` unless one is kept for `key` already or it alone exceeds the limit."""
        size = self.size(value)
        if size > self.limit:
            return
        with self._lock:
            if key in self._kept:
                return
            self._kept[key] = value
            self._bytes += size
            while self._bytes > self.limit:
                _, dropped = self._kept.popitem(last=False)
                self._bytes -= self.size(dropped)

    def values(self) -> list:
        """Every kept value, least recently used first."""
        with self._lock:
            return list(self._kept.values())

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._kept.clear()
            self._bytes = 0
