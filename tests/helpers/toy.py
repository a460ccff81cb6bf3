"""A toy generator whose rewritable layer is a 1x1 convolution: a plain linear memory."""

from __future__ import annotations

import torch
from torch import nn

from rewriting.generator import Generator, LayerSpec

KEYS, VALUES, SIZE = 8, 6, 4


class ToyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lift = nn.Linear(KEYS, KEYS * SIZE * SIZE)
        self.memory = nn.Conv2d(KEYS, VALUES, 1)

    def forward(self, z: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        keys = torch.relu(self.lift(z)).reshape(-1, KEYS, SIZE, SIZE)
        return torch.tanh(self.memory(keys))


class Toy(Generator):
    family = "toy"

    def to_image(self, raw: torch.Tensor) -> torch.Tensor:
        return super().to_image(raw[:, :3])


def toy_generator() -> Toy:
    spec = LayerSpec(
        name="memory", module="memory", weight="memory.weight", key_axis=1,
        key_channels=KEYS, value_channels=VALUES, key_grid=(SIZE, SIZE),
        value_grid=(SIZE, SIZE), linear=True,
    )
    return Toy("toy", ToyNet(), [spec], "memory", KEYS, "0" * 64, (SIZE, SIZE))
