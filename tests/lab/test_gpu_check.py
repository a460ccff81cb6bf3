"""scripts/gpu_check.sh: its small CPU run prints its table and merges its figures under
`device`; without a GPU the GPU run is refused in one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rewriting_lab import gpu_check

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_the_cpu_run_prints_its_table_and_keeps_the_other_figures(tmp_path):
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"dcgan-digiface": {"kept": True}}))
    run = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--cpu", "--json",
                          str(bench)], capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    for family in gpu_check.VECTORS:
        assert f"contracts {family:14} ok" in run.stdout
    assert "vs CPU dcgan-digiface" in run.stdout and "vs CPU stylegan2-tiny" in run.stdout
    assert "dcgan-digiface           float32" in run.stdout and "passed in" in run.stdout
    data = json.loads(bench.read_text())
    assert data["dcgan-digiface"] == {"kept": True}
    figures = data["device"]["benchmarks"]["dcgan-digiface"]
    assert figures["throughput_batch_8"]["float32"] > 0 and figures["first_edit"]["total"] > 0
    assert data["device"]["compared"]["dcgan-digiface"]["delta_cosine"] > 0.999


def test_without_a_gpu_the_gpu_run_is_refused(capsys):
    if gpu_check.torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert gpu_check.main([]) == 2
    assert "error: device cuda is not available here" in capsys.readouterr().err
