"""`sample --raw` renders stored latents through a checkpoint, to check against other code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

DATA = Path(__file__).parents[1] / "data"
CASES = [
    (
        "stylegan2",
        "stylegan2_tiny_g_ema.pt",
        "stylegan2_tiny_reference.safetensors",
        None,
        "image",
        1e-4,
    ),
    (
        "stylegan2",
        "stylegan2_tiny_g_ema.pt",
        "stylegan2_tiny_reference.safetensors",
        "0.7",
        "image_truncation_0.7",
        1e-4,
    ),
    ("proggan", "proggan_tiny.pth", "proggan_tiny_reference.safetensors", None, "image", 1e-5),
]


@pytest.mark.parametrize(("family", "checkpoint", "reference", "truncation", "key", "tol"), CASES)
@pytest.mark.slow
def test_raw_output_matches_the_reference(
    tmp_path, family, checkpoint, reference, truncation, key, tol
):
    expected = load_file(DATA / reference)
    save_file({"z": expected["z"]}, tmp_path / "z.safetensors")
    args = [
        "sample",
        "--checkpoint",
        str(DATA / checkpoint),
        "--family",
        family,
        "--latents",
        str(tmp_path / "z.safetensors"),
        "--raw",
        str(tmp_path / "out.safetensors"),
    ]
    if truncation:
        args += ["--truncation", truncation]
    done = subprocess.run(
        [sys.executable, "-m", "rewriting", *args], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    image = load_file(tmp_path / "out.safetensors")["image"]
    assert image.shape == expected[key].shape
    assert float((image - expected[key]).abs().max()) < tol


@pytest.mark.slow
def test_raw_with_the_wrong_family_is_a_clear_error(tmp_path):
    save_file({"z": torch.zeros(1, 32)}, tmp_path / "z.safetensors")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rewriting",
            "sample",
            "--checkpoint",
            str(DATA / "proggan_tiny.pth"),
            "--family",
            "stylegan2",
            "--latents",
            str(tmp_path / "z.safetensors"),
            "--raw",
            str(tmp_path / "out.safetensors"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "not a StyleGAN2 checkpoint" in done.stderr
    assert not (tmp_path / "out.safetensors").exists()
