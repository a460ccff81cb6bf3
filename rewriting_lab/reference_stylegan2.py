"""rosinality's stylegan2-pytorch, loaded from a checkout the user names, beside our StyleGAN2
plugin with the same weights: for measuring the two side by side (`bench --reference PATH`).

The checkout's `op/` package compiles CUDA kernels when imported; on the CPU it never calls
them (its upfirdn2d and fused leaky ReLU fall back to plain PyTorch), so the compilation is
skipped while importing. Nothing of the checkout is part of this project.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from unittest import mock

import torch
from torch import nn

from plugins.base import LocalFile, ModelEntry
from plugins.stylegan2 import PLUGIN
from rewriting.errors import RewritingError
from rewriting.generator import Generator


def check_checkout(checkout: str | Path) -> Path:
    """`checkout` as a path, refused unless it looks like a stylegan2-pytorch checkout."""
    path = Path(checkout)
    if not ((path / "model.py").is_file() and (path / "op").is_dir()):
        raise RewritingError(f"{checkout} is not a checkout of rosinality/stylegan2-pytorch "
                             "(no model.py and op/)")
    return path


def reference_module(checkout: Path) -> types.ModuleType:
    """The checkout's `model` module, imported with its CUDA kernels left uncompiled."""
    source = check_checkout(checkout) / "model.py"
    sys.path.insert(0, str(Path(checkout)))
    try:
        with mock.patch("torch.utils.cpp_extension.load", lambda *a, **k: None):
            spec = importlib.util.spec_from_file_location("stylegan2_reference_model", source)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(Path(checkout)))
        # Its top-level `op` package stays with the module, not under that name for others.
        for name in [n for n in sys.modules if n == "op" or n.startswith("op.")]:
            del sys.modules[name]
    return module


def reference_pair(checkout: Path, size: int = 256, seed: int = 0) -> tuple[nn.Module, Generator]:
    """rosinality's config-f Generator at `size` px with random weights (seeded), and our
    plugin built from its state dict."""
    torch.manual_seed(seed)
    reference = reference_module(checkout).Generator(size, 512, 8, channel_multiplier=2).eval()
    entry = ModelEntry(f"stylegan2-reference-{size}", "stylegan2", LocalFile("(random)"),
                       "none", default_layer="layer8")
    state = {"g_ema": reference.state_dict(), "latent_avg": torch.zeros(512)}
    return reference, PLUGIN.build(state, entry, "random")


def reference_images(reference: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """The reference's images for latents `z` at truncation 1, with its fixed noise maps."""
    with torch.no_grad():
        return reference([z], randomize_noise=False)[0]
