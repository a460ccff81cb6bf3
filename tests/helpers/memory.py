"""The process's peak resident memory around one call, for tests that bound what a refused
input may cost (Linux: the high-water mark is reset through /proc/self/clear_refs)."""

from __future__ import annotations

import gc
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: What a refused input may add to the process's peak memory (the issue's bound).
REFUSAL_BUDGET_MB = 200
#: Writing 5 here resets the process's peak resident memory to its current one (Linux).
PEAK_RESET = "/proc/self/clear_refs"


def _status_mb(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1)) / 1024


def peak_during(call: Callable[[], Any]) -> tuple[float, Exception | None]:
    """(MB the peak resident memory rose above the level before `call`, what it raised)."""
    gc.collect()
    Path(PEAK_RESET).write_text("5")  # the high-water mark := current RSS
    before = _status_mb("VmRSS")
    raised = None
    try:
        call()
    except Exception as err:  # the caller checks what was raised
        raised = err
    return _status_mb("VmHWM") - before, raised
