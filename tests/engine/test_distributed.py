"""Statistics and bulk rendering under torchrun (two CPU processes, gloo) match one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file


def _run(args: list[str], cache: Path, cwd: Path, ranks: int = 1) -> None:
    launcher = [sys.executable, "-m", "rewriting"]
    if ranks > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                    str(ranks), "--standalone", "-m", "rewriting"]
    env = {**os.environ, "REWRITING_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, *args], capture_output=True, text=True, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_two_processes_give_the_same_statistics_and_images(tmp_path):
    stats = ["stats", "--layer", "main.6", "--samples", "96"]
    _run([*stats, "--out", "one.safetensors"], tmp_path / "c1", tmp_path)
    _run([*stats, "--out", "two.safetensors"], tmp_path / "c2", tmp_path, ranks=2)
    one, two = load_file(tmp_path / "one.safetensors"), load_file(tmp_path / "two.safetensors")
    difference = (one["second_moment"] - two["second_moment"]).abs().max()
    assert float(difference) < 1e-12 * float(one["second_moment"].abs().max())
    assert one["key_sample"].equal(two["key_sample"])

    render = ["render", "--samples", "0-20"]
    _run([*render, "--out", "single"], tmp_path / "c1", tmp_path)
    _run([*render, "--out", "split"], tmp_path / "c2", tmp_path, ranks=2)
    names = sorted(p.name for p in (tmp_path / "single").iterdir())
    assert names == [f"{n:06d}.png" for n in range(21)]
    assert names == sorted(p.name for p in (tmp_path / "split").iterdir())
    for name in names:
        a = Image.open(tmp_path / "single" / name).tobytes()
        assert a == Image.open(tmp_path / "split" / name).tobytes()
