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
def test_layer_auto_searches_and_records_every_candidate(tmp_path):
    done = run("edit", str(EXAMPLE), "--out", "out", "--layer", "auto",
               "--held-out", "32", "--strength", "1.5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    table = [line for line in lines if line[:10].strip("*x ").startswith("main.")]
    chosen = [line.split()[1] for line in table if line.startswith("*")]
    assert len(chosen) == 1
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["layer"] == chosen[0]
    assert metrics["strength"] == 1.5  # given: the search leaves it as it is
    search = metrics["search"]
    assert search["chosen"]["layer"] == chosen[0]
    assert len(search["candidates"]) == len(table)
    assert {c["strength"] for c in search["candidates"]} == {1.5}
    assert all("score" in c and "admissible" in c for c in search["candidates"])
    for key in ("efficacy", "generalization", "specificity", "artefacts"):
        assert key in metrics["random_floor"]
    assert isinstance(metrics["took"], bool) and metrics["verdict"].startswith("The edit")
    assert metrics["verdict"] in done.stdout
    request = json.loads((tmp_path / "out" / "request.json").read_text())
    assert request["layer"] == chosen[0] and request["strength"] == 1.5
    # Where the time went: each phase's seconds, together within the command's total.
    phases = metrics["seconds_phases"]
    assert set(phases) == {"load", "search", "statistics", "execute", "measure", "verdict",
                           "picture"}
    assert all(seconds > 0 for seconds in phases.values())
    assert sum(phases.values()) <= metrics["seconds_total"]


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
