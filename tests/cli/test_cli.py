"""The command line: the main job on the default model, and every bad input (exit 2, no files)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).parents[2]
EXAMPLE = json.loads((ROOT / "examples" / "eye-to-mouth.json").read_text())


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rewriting", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.slow
def test_edit_writes_the_four_files(tmp_path):
    done = run("edit", str(ROOT / "examples" / "eye-to-mouth.json"), "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "before_after.png", "delta.safetensors", "metrics.json", "request.json",
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("residual", "delta_norm_ratio", "rank", "change_inside", "change_outside",
                "seconds_solve", "seconds_total"):
        assert key in metrics
    assert metrics["change_inside"] >= 3 * metrics["change_outside"]
    assert metrics["held_out_samples"] >= 64
    picture = Image.open(out / "before_after.png")
    assert picture.width > 12 * 64 and picture.height > 2 * 64  # 12 samples, 3 rows
    # The delta renders and exports through the other commands.
    assert run("sample", "--samples", "0-7", "--edit", "out/delta.safetensors", "--out",
               "grid.png", cwd=tmp_path).returncode == 0
    exported = run("export", "--edit", "out/delta.safetensors", "--out", "model.safetensors",
                   cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    from safetensors.torch import load_file

    assert "main.6.weight" in load_file(tmp_path / "model.safetensors")


@pytest.mark.slow
def test_paper_format_needs_a_layer_and_then_runs(tmp_path):
    mouth = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    mouth.paste((255, 255, 255, 255), (64, 160, 192, 224))
    eyes = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    eyes.paste((255, 255, 255, 255), (64, 96, 192, 160))
    mask, eye_mask = data_url(mouth), data_url(eyes)
    paper = {"object": [1, eye_mask], "paste": [7, mask], "key": [[7, mask], [12, mask]]}
    (tmp_path / "paper.json").write_text(json.dumps(paper))
    missing = run("edit", "paper.json", "--out", "out", "--model", "dcgan-digiface", cwd=tmp_path)
    assert missing.returncode == 2 and "--layer" in missing.stderr
    done = run("edit", "paper.json", "--out", "out", "--model", "dcgan-digiface",
               "--layer", "main.6", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["residual"] < 1


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _request(tmp_path: Path, **changes) -> str:
    request = {**EXAMPLE, **changes}
    if "copy" in changes and changes["copy"]["mask"] is None:
        request["copy"] = {"sample": 1, "mask": data_url(Image.new("RGBA", (64, 64)))}
    (tmp_path / "bad.json").write_text(json.dumps(request))
    return "bad.json"


BAD_REQUESTS = {
    "unknown model": ({"model": "dcgan-digiface2"}, "did you mean dcgan-digiface"),
    "unknown layer": ({"layer": "main.7"}, "no rewritable layer"),
    "empty mask": ({"paste": {"sample": 7, "mask": [40, 16, 40, 48]}}, "empty"),
    "mask outside": ({"copy": {"sample": 1, "mask": [24, 16, 40, 80]}}, "outside"),
    "blank png": ({"copy": {"sample": 1, "mask": None}}, "empty"),
    "not an image": ({"copy": {"sample": 1, "mask": "data:image/png;base64,AAAA"}}, "readable"),
    "sample out of range": ({"copy": {"sample": 10**9, "mask": [0, 0, 8, 8]}}, "out of range"),
    "negative sample": ({"copy": {"sample": -1, "mask": [0, 0, 8, 8]}}, "non-negative"),
    "bad method": ({"method": "magic"}, "method must be"),
    "rank too high": ({"rank": 5000}, "rank"),
    "truncation on dcgan": ({"truncation": 0.5}, "no truncation"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
@pytest.mark.slow
def test_bad_requests_exit_2_with_one_line_and_write_nothing(tmp_path, name):
    changes, message = BAD_REQUESTS[name]
    done = run("edit", _request(tmp_path, **changes), "--out", "out", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_malformed_files_and_foreign_deltas(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    done = run("edit", "broken.json", "--out", "out", cwd=tmp_path)
    assert done.returncode == 2 and "not valid JSON" in done.stderr
    (tmp_path / "fake.safetensors").write_bytes(b"\x00" * 64)
    done = run("sample", "--edit", "fake.safetensors", "--out", "g.png", cwd=tmp_path)
    assert done.returncode == 2 and "cannot read delta" in done.stderr
    done = run("sample", "--samples", "3-1", "--out", "g.png", cwd=tmp_path)
    assert done.returncode == 2 and "bad sample list" in done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "g.png").exists()


@pytest.mark.slow
def test_a_delta_made_for_another_model_is_refused(tmp_path):
    import torch

    from rewriting.delta import Delta

    delta = Delta(
        layer="main.6", weight="main.6.weight", key_axis=0, lam=torch.zeros(1, 128, 4, 4),
        directions=torch.zeros(1, 256), model="someone-else", weights_sha256="0" * 64,
    )
    delta.save(tmp_path / "other.safetensors")
    done = run("sample", "--edit", "other.safetensors", "--out", "g.png", cwd=tmp_path)
    assert done.returncode == 2 and "made for model 'someone-else'" in done.stderr
    assert not (tmp_path / "g.png").exists()
