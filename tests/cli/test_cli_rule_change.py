"""`edit` reports whether the rule changed, takes a strength, and suggests a layer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "eye-to-mouth.json"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rewriting", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.slow
def test_layer_auto_prints_every_layer_and_uses_the_suggestion(tmp_path):
    done = run("edit", str(EXAMPLE), "--out", "out", "--layer", "auto",
               "--held-out", "32", "--strength", "1.5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if line[:8].strip("* ").startswith("main.")]
    layers = [line.lstrip("* ").split()[0] for line in table]
    assert layers == ["main.0", "main.3", "main.6", "main.9", "main.12"]
    chosen = [line.split()[1] for line in table if line.startswith("*")]
    assert len(chosen) == 1
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["layer"] == chosen[0]
    assert metrics["strength"] == 1.5
    for key in ("efficacy", "generalization", "specificity"):
        assert -1 < metrics[key] <= 1
        assert key in metrics["random_floor"]
    assert metrics["efficacy"] > metrics["random_floor"]["efficacy"]
    request = json.loads((tmp_path / "out" / "request.json").read_text())
    assert request["layer"] == chosen[0] and request["strength"] == 1.5
    # Where the time went: each phase's seconds, together within the command's total.
    phases = metrics["seconds_phases"]
    assert set(phases) == {"load", "suggest_layer", "statistics", "execute", "measure", "picture"}
    assert all(seconds > 0 for seconds in phases.values())
    assert sum(phases.values()) <= metrics["seconds_total"]
    assert phases["suggest_layer"] > phases["execute"]  # it solves at every layer


@pytest.mark.slow
def test_bad_strength_is_refused_before_anything_is_written(tmp_path):
    done = run("edit", str(EXAMPLE), "--out", "out", "--strength", "-1", cwd=tmp_path)
    assert done.returncode == 2 and "strength" in done.stderr
    assert not (tmp_path / "out").exists()
    bad = json.loads(EXAMPLE.read_text()) | {"strength": "big"}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    done = run("edit", "bad.json", "--out", "out", cwd=tmp_path)
    assert done.returncode == 2 and "strength" in done.stderr
    assert not (tmp_path / "out").exists()
