"""Run app.py in a child process (see app_process), with the statistics cache in a given folder."""

from __future__ import annotations

from pathlib import Path

from rewriting_lab.app_process import ROOT, free_port, running_app

__all__ = ["ROOT", "app_log", "free_port", "running_app"]


def app_log(folder: Path) -> str:
    """What the app printed, for a failing test's message."""
    path = folder / "app.log"
    return path.read_text()[-4000:] if path.exists() else ""
