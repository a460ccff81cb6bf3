"""The app benchmark drives the real app and reports every latency it promises (not timed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rewriting_lab import app_bench
from rewriting_lab.bench import table


@pytest.mark.slow
def test_app_bench_reports_every_action_from_real_edits():
    report = app_bench.app_latency(visitors=2, rounds=1,
                                   cache=Path(os.environ["REWRITING_CACHE"]))
    for suffix, calls in (("_1", 1), ("", 2)):
        assert report[f"calls{suffix}"] == calls
        for action in app_bench.ACTIONS:
            p50, p95 = report[f"{action}_p50_s{suffix}"], report[f"{action}_p95_s{suffix}"]
            assert 0 < p50 <= p95, (action, suffix, p50, p95)
    assert report["page_open_s"] == report["page_open_p50_s"]
    # The figures follow the picture; each Execute changed its paste sample.
    assert report["measures_p50_s_1"] > report["execute_p50_s_1"]
    assert report["execute_mean_change"] > 1.0
    printed = table({"app": report})
    assert "| app | Execute to result (its before/after picture), 2 visitors at once |" in printed
    assert "| app | Execute to its measures, 1 visitor |" in printed
    assert "| app | page open to a usable canvas, 1 visitor |" in printed
