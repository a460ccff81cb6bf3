"""Progressive GAN in the layout of the GAN-dissection / rewriting-paper checkpoints.

A plain state dict of blocks `layer1..layerN` and one `output_RxR` block, each a convolution
without bias (`conv.weight`) and an equalised-learning-rate scale with bias (`wscale.b`). Every
block pixel-normalises its input; odd blocks from layer3 on first upsample it (nearest, x2);
layer1 is a 4x4 convolution with padding 3 of z seen as a 1x1 map (a dense layer). Depths come
from the tensor shapes. `layerN` is rewritable on its convolution's linear output, before the
scale, bias and activation: the built-in nn.Conv2d key/value with key axis 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewriting.errors import RewritingError
from rewriting.generator import Generator, LayerSpec
from rewriting.limits import MAX_LATENT_DIM

from .base import (
    ModelEntry,
    Plugin,
    UrlFile,
    build_matching,
    check_doublings,
    declared_size,
    layer_indices,
)

TITLE = "Progressive GAN"


class WScale(nn.Module):
    """Multiply by the equalised-learning-rate constant and add the bias `b`."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.zeros(channels))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.b[None, :, None, None]


class Block(nn.Module):
    """Pixel norm, optional nearest x2 upsample, conv, wscale, then leaky ReLU or hardtanh."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, padding: int, upsample: bool = False,
        output: bool = False,
    ) -> None:
        super().__init__()
        self.upsample = upsample
        self.output = output
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=False)
        gain = 1.0 if output else math.sqrt(2.0) / kernel
        self.wscale = WScale(c_out, gain / math.sqrt(c_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.finish(self.conv(x))

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """What follows the convolution: the scale and bias, then the activation."""
        x = self.wscale(x)
        return F.hardtanh(x) if self.output else F.leaky_relu(x, 0.2)


class ProgressiveGANNet(nn.Module):
    """`layer1..layerN` then `output_RxR`; `depths` = [z, depth at 4x4, at 8x8, ...]."""

    def __init__(self, depths: list[int]) -> None:
        super().__init__()
        blocks = [Block(depths[0], depths[1], 4, 3), Block(depths[1], depths[1], 3, 1)]
        for c_in, c_out in zip(depths[1:-1], depths[2:], strict=True):
            blocks += [Block(c_in, c_out, 3, 1, upsample=True), Block(c_out, c_out, 3, 1)]
        for i, block in enumerate(blocks):
            self.add_module(f"layer{i + 1}", block)
        side = 4 * 2 ** (len(depths) - 2)
        self.add_module(f"output_{side}x{side}", Block(depths[-1], 3, 1, 0, output=True))

    def forward(self, z: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        x = z.reshape(z.shape[0], -1, 1, 1)
        for block in self.children():
            x = block(x)
        return x


class ProgressiveGAN(Generator):
    """A Progressive GAN generator: z ~ N(0, I), no truncation, output in [-1, 1]."""

    family = "proggan"

    def tail(self, net: nn.Module, module: str) -> Callable[[torch.Tensor], torch.Tensor]:
        """The rest of the layer's block after its convolution, then the blocks after it."""
        name = module.removesuffix(".conv")
        blocks = list(net.named_children())
        start = [n for n, _ in blocks].index(name)

        def resume(x: torch.Tensor) -> torch.Tensor:
            x = blocks[start][1].finish(x)
            for _, block in blocks[start + 1 :]:
                x = block(x)
            return x

        return resume


def _state_dict(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The generator state dict, bare or under 'state_dict'."""
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping) or "layer1.conv.weight" not in checkpoint:
        raise RewritingError(
            "not a Progressive GAN checkpoint: expected a GAN-dissection state dict with "
            "'layerN.conv.weight', 'layerN.wscale.b' and 'output_RxR' tensors"
        )
    return dict(checkpoint)


def build(checkpoint: Any, entry: ModelEntry, sha256: str) -> ProgressiveGAN:
    """Build the network from the checkpoint's shapes (each checked, and the network's whole
    layout compared with the file's, before anything is allocated) and load its weights."""
    state = _state_dict(checkpoint)
    n_layers = max(layer_indices(state, r"layer(\d+)\.conv\.weight"))
    if n_layers % 2:
        raise RewritingError(
            f"Progressive GAN checkpoint lacks the tensor 'layer{n_layers + 1}.conv.weight' "
            "(conv blocks come in pairs)"
        )
    check_doublings(n_layers // 2 - 1, TITLE)
    depths = [declared_size(state, "layer1.conv.weight", 1, TITLE, MAX_LATENT_DIM)]
    depths += [declared_size(state, f"layer{i}.conv.weight", 0, TITLE)
               for i in range(1, n_layers, 2)]
    net = build_matching(lambda: ProgressiveGANNet(depths), state, TITLE)
    layers, side = [], 1
    for i in range(1, n_layers + 1):
        block = net.get_submodule(f"layer{i}")
        out_side = 4 if i == 1 else side * 2 if block.upsample else side
        key_side = out_side if i > 1 else 1
        layers.append(
            LayerSpec(
                name=f"layer{i}", module=f"layer{i}.conv", weight=f"layer{i}.conv.weight",
                key_axis=1, key_channels=block.conv.in_channels,
                value_channels=block.conv.out_channels, key_grid=(key_side, key_side),
                value_grid=(out_side, out_side), linear=True,
            )
        )
        side = out_side
    default = entry.default_layer or layers[len(layers) // 2].name
    if default not in {spec.name for spec in layers}:
        raise RewritingError(f"Progressive GAN model {entry.name!r} has no layer {default!r}")
    return ProgressiveGAN(entry.name, net, layers, default, depths[0], sha256, (side, side))


LICENSE_NOTE = "NVIDIA Progressive GAN weights, CC BY-NC 4.0: non-commercial use only"
URL = "http://gandissect.csail.mit.edu/models/proggan_{}.pth"


def _entry(name: str, tag: str, title: str, size: int, layer: str | None = None) -> ModelEntry:
    """A checkpoint on the GAN-dissection server; `tag` is "file-<sha256 prefix>"."""
    return ModelEntry(
        name=f"proggan-{name}", family="proggan",
        source=UrlFile(URL.format(tag), sha256=tag.rsplit("-", 1)[1]), license="cc-by-nc-4.0",
        description=f"{size}px Progressive GAN, {title} (GAN-dissection conversion, as used by "
        f"the rewriting paper); {LICENSE_NOTE}",
        default_layer=layer,
    )


PLUGIN = Plugin(
    family="proggan",
    build=build,
    description="Progressive GAN, GAN-dissection layout (layerN.conv + wscale, hardtanh output)",
    models=(
        _entry("church", "churchoutdoor-7e701dd5", "LSUN church outdoor", 256),
        _entry("kitchen", "kitchen-67f1e16c", "LSUN kitchen", 256, "layer6"),
        _entry("bedroom", "bedroom-d8a89ff1", "LSUN bedroom", 256),
        _entry("livingroom", "livingroom-5ef336dd", "LSUN living room", 256),
        _entry("diningroom", "diningroom-3aa0ab80", "LSUN dining room", 256),
        _entry("conferenceroom", "conferenceroom-21e85882", "LSUN conference room", 256),
        _entry("restaurant", "restaurant-b8578299", "LSUN restaurant", 256),
        _entry("celebahq", "celebhq-620d161c", "CelebA-HQ faces", 1024),
    ),
)
