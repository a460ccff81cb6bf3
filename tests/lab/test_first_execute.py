"""The benchmark of the examples' first Execute on fresh servers reports what it promises: the
first start computes the statistics, the next ones load them, each button's Execute is timed
(not checked against a target here: the machine running the tests is not the benchmark's)."""

from __future__ import annotations

import pytest

from rewriting_lab.bench import first_execute_rows
from rewriting_lab.first_execute import first_execute


@pytest.mark.slow
def test_first_execute_reports_a_first_start_and_a_cached_one():
    report = first_execute(starts=1)
    first = report["first_start"]
    assert len(first["statistics"]) == 1
    assert first["statistics"][0].startswith("statistics for dcgan-digiface main.6: computed in")
    assert len(report["statistics"]) == 1
    assert report["statistics"][0].startswith(
        "statistics for dcgan-digiface main.6: loaded from cache in")
    assert list(report["buttons"]) == ["example-0", "example-1", "example-2"]
    assert report["starts"] == 1
    for figures in report["buttons"].values():
        assert figures["execute_runs_s"] == [figures["execute_s"]]
    assert report["slowest_s"] == max(f["execute_s"] for f in report["buttons"].values())
    for figures in (report, first):
        assert 0 < figures["served_s"] <= figures["warm_up_s"] and figures["execute_s"] > 0
    rows = first_execute_rows(report)
    assert rows[0].startswith("| app | first Execute of example-0 on a fresh server process "
                              "(warm-up done, statistics cached; 1 starts) |")
    assert rows[4].startswith("| app | first start ever: warm-up done (statistics computed)")
    assert first_execute_rows(None) == []
