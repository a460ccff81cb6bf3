"""Checks that a refused input got one clear line and changed nothing (CLI and library)."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import pytest
from memory import REFUSAL_BUDGET_MB, peak_during

from rewriting.errors import RewritingError
from rewriting.stats import default_cache_dir
from rewriting_cli.main import main


def snapshot(folder: Path) -> dict[str, object]:
    """Every file and folder under `folder` with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else 0
        for p in sorted(folder.rglob("*"))
    }


def says(text: str, message: str) -> bool:
    """Whether `text` holds `message`, or one of its alternatives separated by '|'."""
    return any(part in text for part in message.split("|"))


def refused(argv: list, message: str, capsys, folder: Path) -> str:
    """Run the CLI in-process: exit status 2, one `error:` line matching `message`, no trace,
    nothing written, and a peak memory at most REFUSAL_BUDGET_MB above the level before."""
    cache = default_cache_dir()
    before = snapshot(folder), snapshot(cache)
    gc.collect()  # what earlier tests left (unclosed event loops) warns now, not in the case
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        statuses = []
        rise, raised = peak_during(lambda: statuses.append(main([str(a) for a in argv])))
    assert raised is None, repr(raised)
    status = statuses[0]
    out, err = capsys.readouterr()
    assert not warned, [str(w.message) for w in warned]  # each would be one more line
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert says(lines[0], message), lines[0]
    assert "Traceback" not in err and not out
    assert (snapshot(folder), snapshot(cache)) == before, "something was written"
    assert rise <= REFUSAL_BUDGET_MB, f"refusing it raised the peak memory by {rise:.0f} MB"
    return lines[0]


def one_line_error(call, message: str) -> str:
    """A library call that must raise RewritingError with a one-line message matching."""
    with pytest.raises(RewritingError) as caught:
        call()
    text = str(caught.value)
    assert "\n" not in text and says(text, message), text
    return text


def cheap_refusal(call, message: str) -> str:
    """`call` raises a one-line RewritingError matching `message`, within the memory budget."""
    rise, raised = peak_during(call)
    assert isinstance(raised, RewritingError), repr(raised)
    text = str(raised)
    assert "\n" not in text and says(text, message), text
    assert rise <= REFUSAL_BUDGET_MB, f"refusing it raised the peak memory by {rise:.0f} MB"
    return text
