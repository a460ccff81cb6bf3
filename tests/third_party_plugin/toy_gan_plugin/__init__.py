"""A tiny third-party generator family: a linear stem and one upsampling transposed conv."""

from __future__ import annotations

import torch
from torch import nn

from plugins.base import ModelEntry, PackageFile, Plugin
from rewriting.errors import RewritingError
from rewriting.generator import Generator, LayerSpec


class TinyNet(nn.Module):
    def __init__(self, z_dim: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.stem = nn.Linear(z_dim, channels * 16)
        self.up = nn.ConvTranspose2d(channels, 3, 4, 2, 1)

    def forward(self, z: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        x = torch.relu(self.stem(z)).reshape(-1, self.channels, 4, 4)
        return torch.tanh(self.up(x))


class TinyGAN(Generator):
    family = "tinygan"


def build(checkpoint, entry: ModelEntry, sha256: str) -> TinyGAN:
    if "stem.weight" not in checkpoint or "up.weight" not in checkpoint:
        raise RewritingError("not a tinygan checkpoint")
    channels, z_dim = checkpoint["stem.weight"].shape[0] // 16, checkpoint["stem.weight"].shape[1]
    net = TinyNet(z_dim, channels)
    net.load_state_dict(checkpoint)
    layer = LayerSpec(
        name="up", module="up", weight="up.weight", key_axis=0, key_channels=channels,
        value_channels=3, key_grid=(4, 4), value_grid=(8, 8), linear=True,
    )
    return TinyGAN(entry.name, net, [layer], "up", z_dim, sha256, (8, 8))


PLUGIN = Plugin(
    family="tinygan",
    build=build,
    models=(
        ModelEntry(
            name="tinygan-demo", family="tinygan", license="mit",
            source=PackageFile("toy_gan_plugin", "weights.safetensors"),
            description="8x8 random-weight demo of a third-party plugin", default_layer="up",
        ),
    ),
)
