"""DCGAN (the PyTorch DCGAN tutorial layout), with the embedded default `dcgan-digiface`.

The network is `main`: ConvTranspose2d, BatchNorm2d, ReLU blocks and a final ConvTranspose2d
and Tanh. Channel counts and depth come from the checkpoint's tensor shapes. Every
ConvTranspose2d is rewritable; its weight is [in, out, kh, kw], so the key axis is 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from rewriting.errors import RewritingError
from rewriting.generator import Generator, LayerSpec
from rewriting.limits import MAX_LATENT_DIM
from rewriting.photo import FaceFraming

from .base import (
    ModelEntry,
    PackageFile,
    Plugin,
    build_matching,
    check_doublings,
    declared_size,
    layer_indices,
)

TITLE = "DCGAN"


class DCGANNet(nn.Module):
    """`main` as in the DCGAN tutorial; the first layer maps a 1x1 latent to 4x4."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        last = len(channels) - 2
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
            stride, padding = (1, 0) if i == 0 else (2, 1)
            blocks.append(nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False))
            if i < last:
                blocks += [nn.BatchNorm2d(c_out), nn.ReLU(True)]
        blocks.append(nn.Tanh())
        self.main = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], -1, 1, 1))


def _state_dict(checkpoint: Any) -> Mapping[str, torch.Tensor]:
    """The generator's state dict from a training checkpoint or a bare state dict."""
    if isinstance(checkpoint, Mapping) and "netG_state_dict" in checkpoint:
        checkpoint = checkpoint["netG_state_dict"]
    if not isinstance(checkpoint, Mapping) or not any(
        re.fullmatch(r"main\.\d+\.weight", str(k)) for k in checkpoint
    ):
        raise RewritingError(
            "not a DCGAN checkpoint: expected 'main.N.weight' tensors "
            "(a DCGAN-tutorial generator state dict, optionally under 'netG_state_dict')"
        )
    return checkpoint


class DCGAN(Generator):
    """A DCGAN generator: z ~ N(0, I), no truncation, output in [-1, 1]."""

    family = "dcgan"

    def tail(self, net: nn.Module, module: str) -> nn.Module:
        """The blocks of `main` after the layer `main.<i>`."""
        return net.main[int(module.removeprefix("main.")) + 1 :]


def build(checkpoint: Any, entry: ModelEntry, sha256: str) -> DCGAN:
    """Build the network from the checkpoint's shapes (each checked, and the network's whole
    layout compared with the file's, before anything is allocated) and load its weights
    (BatchNorm in eval)."""
    state = _state_dict(checkpoint)
    conv_ids = [
        i for i in layer_indices(state, r"main\.(\d+)\.weight")
        if isinstance(weight := state.get(f"main.{i}.weight"), torch.Tensor) and weight.dim() == 4
    ]
    if not conv_ids:
        raise RewritingError("DCGAN checkpoint has no transposed convolution (no 'main.N.weight' "
                             "with 4 dimensions)")
    check_doublings(len(conv_ids) - 1, TITLE)
    channels = [declared_size(state, f"main.{conv_ids[0]}.weight", 0, TITLE, MAX_LATENT_DIM)]
    channels += [declared_size(state, f"main.{i}.weight", 1, TITLE) for i in conv_ids]
    net = build_matching(lambda: DCGANNet(channels), state, TITLE)
    layers = []
    grid = 1
    for i in conv_ids:
        conv = net.main[i]
        out_grid = (grid - 1) * conv.stride[0] - 2 * conv.padding[0] + conv.kernel_size[0]
        layers.append(
            LayerSpec(
                name=f"main.{i}", module=f"main.{i}", weight=f"main.{i}.weight", key_axis=0,
                key_channels=conv.in_channels, value_channels=conv.out_channels,
                key_grid=(grid, grid), value_grid=(out_grid, out_grid), linear=True,
            )
        )
        grid = out_grid
    default = entry.default_layer or layers[len(layers) // 2].name
    return DCGAN(entry.name, net, layers, default, channels[0], sha256, (grid, grid))


#: sha256 of weights.tar in the wheel gan-face-generate 1.1.1 (its RECORD gives the same digest).
WEIGHTS_SHA256 = "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f"

PLUGIN = Plugin(
    family="dcgan",
    build=build,
    description="DCGAN, PyTorch tutorial layout (ConvTranspose2d + BatchNorm + ReLU, Tanh)",
    models=(
        ModelEntry(
            name="dcgan-digiface",
            family="dcgan",
            source=PackageFile("gan_face_generate", "weights.tar", sha256=WEIGHTS_SHA256),
            license="mit",
            description="64x64 synthetic faces (DigiFace-1M), from the PyPI package "
            "gan-face-generate 1.1.1; the embedded default, no network needed",
            default_layer="main.6",
            # Median over the 38 of samples 0-63 where the Haar cascade finds a face.
            face_framing=FaceFraming(face_share=0.78, centre_below=0.05),
        ),
    ),
)
