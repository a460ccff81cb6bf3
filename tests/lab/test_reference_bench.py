"""`bench --reference`: loading a stylegan2-pytorch checkout beside our plugin, and the
side-by-side figures (their arithmetic, not their speed)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from rewriting.errors import RewritingError
from rewriting_cli.main import main
from rewriting_lab import bench
from rewriting_lab.reference_stylegan2 import reference_images, reference_pair

#: A stand-in checkout: its op/ compiles "CUDA kernels" at import (which must be skipped) and
#: its Generator has rosinality's constructor and call signature (a small net of our layout).
FAKE_OP = """
import torch.utils.cpp_extension
kernels = torch.utils.cpp_extension.load("fused", sources=["missing_kernel.cu"])
"""
FAKE_MODEL = """
from op import kernels
from plugins.stylegan2 import StyleGAN2Net

class Generator(StyleGAN2Net):
    def __init__(self, size, style_dim, n_mlp, channel_multiplier=2):
        super().__init__(16, 2, [16, 16, 8, 8])

    def forward(self, styles, randomize_noise=True):
        assert not randomize_noise
        return super().forward(styles[0]), None
"""


def fake_checkout(folder: Path) -> Path:
    (folder / "op").mkdir(parents=True)
    (folder / "op" / "__init__.py").write_text(textwrap.dedent(FAKE_OP))
    (folder / "model.py").write_text(textwrap.dedent(FAKE_MODEL))
    return folder


def test_a_checkout_loads_without_compiling_and_ours_gets_its_weights(tmp_path):
    reference, ours = reference_pair(fake_checkout(tmp_path / "checkout"))
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ours.synthesize(z, None), reference_images(reference, z))
    for name, tensor in reference.state_dict().items():
        assert torch.equal(ours.net.state_dict()[name], tensor), name
    with pytest.raises(RewritingError, match="not a checkout"):
        reference_pair(tmp_path)


def test_side_by_side_figures():
    z = torch.zeros(3, 4)
    side = bench.versus_reference(lambda x: x, lambda x: x + 0.5, z, 2)
    assert side["max_abs_difference"] == 0.5 and side["batch"] == 3 and side["runs"] == 2
    assert side["speedup"] == pytest.approx(
        side["images_per_second"] / side["reference_images_per_second"])


def test_bench_refuses_a_bad_reference_before_measuring(tmp_path, capsys):
    assert main(["bench", "--reference", str(tmp_path), "--json", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a checkout of rosinality/stylegan2-pytorch" in err and "\n" not in err
    assert not (tmp_path / "b.json").exists()
