"""Early statistics: their shrinkage form, their refinement to the full ones, the cosine of D."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rewriting.directions import directions_cosine
from rewriting.early import RefiningStats, early_key_stats, shrink
from rewriting.request import read_request
from rewriting.rewrite import execute
from rewriting.stats import (
    STATS_SEED,
    cache_path,
    cached_key_stats,
    compute_key_stats,
    key_stats,
    stats_identity,
)

ROOT = Path(__file__).parents[2]


def test_early_stats_are_the_first_samples_shrunk_towards_their_diagonal(dcgan, tmp_path):
    spec = dcgan.layer("main.6")
    raw = key_stats(dcgan, spec, samples=24, cache_dir=tmp_path)
    early = early_key_stats(dcgan, spec, samples=24, shrinkage=0.25, cache_dir=tmp_path)
    moment = raw.second_moment
    off = ~torch.eye(moment.shape[0], dtype=torch.bool)
    assert torch.equal(torch.diagonal(early.second_moment), torch.diagonal(moment))
    assert torch.allclose(early.second_moment[off], 0.75 * moment[off], rtol=1e-12, atol=0)
    assert early.meta["shrinkage"] == "0.25" and early.meta["samples"] == "24"
    assert torch.equal(early.key_sample, raw.key_sample) and early.count == raw.count
    assert torch.equal(shrink(raw, 0.0).second_moment, moment)
    with pytest.raises(ValueError, match="between 0 and 1"):
        shrink(raw, 1.5)


def test_refinement_replaces_the_early_stats_with_the_full_ones_bit_for_bit(dcgan, tmp_path):
    spec = dcgan.layer("main.6")
    refining = RefiningStats(dcgan, spec, samples=48, early=16, shrinkage=0.1, cache_dir=tmp_path)
    first = refining.current()
    assert first.meta["samples"] == "16" and first.meta["shrinkage"] == "0.1"
    full = refining.wait()
    assert not refining.early and refining.current() is full
    expected = compute_key_stats(dcgan, spec, samples=48)
    assert torch.equal(full.second_moment, expected.second_moment)
    assert torch.equal(full.key_sample, expected.key_sample) and full.count == expected.count
    cached = cached_key_stats(dcgan, spec, samples=48, cache_dir=tmp_path)
    assert cached is not None and torch.equal(cached.second_moment, expected.second_moment)
    # With the full statistics cached, no early ones are made.
    again = RefiningStats(dcgan, spec, samples=48, early=16, cache_dir=tmp_path)
    assert not again.early and torch.equal(again.wait().second_moment, full.second_moment)


def test_an_edit_on_early_stats_records_them_and_its_directions_compare(dcgan, tmp_path):
    spec = dcgan.layer("main.6")
    request = read_request(ROOT / "examples" / "eye-to-mouth.json")
    early = early_key_stats(dcgan, spec, samples=32, shrinkage=0.1, cache_dir=tmp_path)
    full = key_stats(dcgan, spec, samples=256, cache_dir=tmp_path)
    first, later = execute(dcgan, request, stats=early), execute(dcgan, request, stats=full)
    assert first.delta.metrics["statistics"] == {
        "samples": 32, "seed": 2, "count": early.count, "shrinkage": "0.1"}
    assert later.delta.metrics["statistics"] == {"samples": 256, "seed": 2, "count": full.count}
    # The recorded statistics reproduce the early edit exactly.
    again = execute(dcgan, request, stats=early_key_stats(dcgan, spec, samples=32,
                                                          shrinkage=0.1, cache_dir=tmp_path))
    assert torch.equal(again.delta.lam, first.delta.lam)
    cosine = directions_cosine(first.delta.directions, later.delta.directions)
    assert 0.0 <= cosine < 1.0


def test_directions_cosine_on_known_directions():
    angle = 0.3
    d = torch.zeros(1, 5, dtype=torch.float64)
    d[0, 0] = 1.0
    turned = torch.zeros(1, 5, dtype=torch.float64)
    turned[0, 0], turned[0, 1] = math.cos(angle), math.sin(angle)
    assert directions_cosine(d, turned) == pytest.approx(math.cos(angle), abs=1e-12)
    assert directions_cosine(d, -turned) == pytest.approx(math.cos(angle), abs=1e-12)
    plane = torch.eye(5, dtype=torch.float64)[:2]
    rotated = torch.tensor([[math.cos(1.0), math.sin(1.0)], [-math.sin(1.0), math.cos(1.0)]],
                           dtype=torch.float64)
    assert directions_cosine(plane, rotated @ plane) == pytest.approx(1.0, abs=1e-12)
    # One shared direction, one orthogonal: principal cosines 1 and 0.
    other = torch.eye(5, dtype=torch.float64)[[0, 2]]
    assert directions_cosine(plane, other) == pytest.approx(0.5, abs=1e-12)
    with pytest.raises(ValueError, match="shapes"):
        directions_cosine(plane, d)


@pytest.mark.slow
def test_cli_edit_with_early_stats_records_them_and_leaves_the_full_ones_cached(dcgan, tmp_path):
    cache = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, "-m", "rewriting", "edit", str(ROOT / "examples" / "eye-to-mouth.json"),
         "--out", "out", "--early-stats", "16", "--stats-samples", "48", "--held-out", "16",
         "--show", "4"],
        capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "REWRITING_CACHE": str(cache)},
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["statistics"]["samples"] == 16 and metrics["statistics"]["shrinkage"] == "0.1"
    assert "refine_statistics" in metrics["seconds_phases"]
    meta = stats_identity(dcgan, dcgan.layer("main.6"), None, 48, STATS_SEED)
    assert cache_path(cache / "stats", meta).is_file()
