"""Plugins that each break one contract of the engine, for `check-plugin`'s tests.

All build the third-party example's tiny network (tests/third_party_plugin) from its weights:
a linear stem, then one upsampling layer from 4x4 to 8x8 that is the rewritable layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from plugins.base import LocalFile, ModelEntry, Plugin
from rewriting.generator import Generator, LayerSpec

WEIGHTS = (Path(__file__).parents[1] / "third_party_plugin" / "toy_gan_plugin"
           / "weights.safetensors")


class ScaledUp(nn.Module):
    """A transposed convolution whose weight is multiplied by an equalised-learning-rate gain."""

    def __init__(self, channels: int, gain: float = 0.5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels, 3, 4, 4))
        self.bias = nn.Parameter(torch.zeros(3))
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(x, self.weight * self.gain, self.bias, 2, 1)

    def rewrite_key(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def rewrite_value(self, key: torch.Tensor, weight: torch.Tensor, _x: torch.Tensor):
        return F.conv_transpose2d(key, weight, self.bias, 2, 1)  # the gain is forgotten


class TinyNet(nn.Module):
    def __init__(self, z_dim: int, channels: int, up: nn.Module) -> None:
        super().__init__()
        self.channels = channels
        self.stem = nn.Linear(z_dim, channels * 16)
        self.up = up

    def forward(self, z: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        x = torch.relu(self.stem(z)).reshape(-1, self.channels, 4, 4)
        return torch.tanh(self.up(x))


class Tiny(Generator):
    family = "tiny-broken"


class RandomSampler(Tiny):
    """Draws a fresh latent on every call instead of sample N's."""

    def latents(self, indices: Sequence[int], seed: int = 1) -> torch.Tensor:
        return torch.randn(len(list(indices)), self.z_dim)


class ForgetfulTail(Tiny):
    """Resumes after its layer but leaves out the final tanh."""

    def tail(self, net: nn.Module, module: str):
        return lambda x: x


def _build(family: str, generator: type[Tiny], key_grid: tuple[int, int], scaled: bool) -> Plugin:
    def build(checkpoint, entry: ModelEntry, sha256: str) -> Tiny:
        stem = checkpoint["stem.weight"]
        channels, z_dim = stem.shape[0] // 16, stem.shape[1]
        up = ScaledUp(channels) if scaled else nn.ConvTranspose2d(channels, 3, 4, 2, 1)
        net = TinyNet(z_dim, channels, up)
        net.load_state_dict(checkpoint)
        layer = LayerSpec(
            name="up", module="up", weight="up.weight", key_axis=0, key_channels=channels,
            value_channels=3, key_grid=key_grid, value_grid=(8, 8), linear=True,
        )
        gen = generator(entry.name, net, [layer], "up", z_dim, sha256, (8, 8))
        gen.family = family
        return gen

    entry = ModelEntry(f"{family}-demo", family, LocalFile(str(WEIGHTS)), "mit")
    return Plugin(family=family, build=build, models=(entry,))


WRONG_KEY_GRID = _build("tiny-wrong-grid", Tiny, (2, 2), scaled=False)
NONDETERMINISTIC = _build("tiny-random-sampler", RandomSampler, (4, 4), scaled=False)
WRONG_VALUE = _build("tiny-wrong-value", Tiny, (4, 4), scaled=True)
WRONG_TAIL = _build("tiny-wrong-tail", ForgetfulTail, (4, 4), scaled=False)
CORRECT = _build("tiny-correct", Tiny, (4, 4), scaled=False)
