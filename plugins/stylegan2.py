"""StyleGAN2 in rosinality's PyTorch checkpoint layout (`g_ema` state dict and `latent_avg`).

Plain PyTorch, no custom ops, so it runs on any device. Size, style width, mapping depth and every
layer's channel count come from the checkpoint's tensor shapes. Noise is always the checkpoint's
fixed `noises.noise_{i}` buffers, so sample N never depends on the batch it is drawn in.

Rewritable layers follow the paper's numbering: `layer2` is rosinality's `conv1` (4x4) and
`layerN` is `convs.(N-3)`; odd layers upsample. The modulated convolution is computed unfused:
the key is the style-modulated input (input * style per input channel), the memory W is the
unmodulated base weight `conv.weight` [1, out, in, k, k] (key axis 2), and the value is the
layer's output after convolution, demodulation, blur, noise, bias and activation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewriting.errors import RewritingError
from rewriting.generator import Generator, LatentSpace, LayerSpec
from rewriting.limits import MAX_LATENT_DIM, MAX_LAYERS, check_count

from .base import (
    HubFile,
    ModelEntry,
    Plugin,
    UrlFile,
    build_matching,
    check_doublings,
    declared_size,
    layer_indices,
)

TITLE = "StyleGAN2"
#: Learning-rate multiplier of the mapping network (rosinality's `lr_mlp`; not in the weights).
LR_MLP = 0.01
#: Latents averaged to estimate `latent_avg` when a checkpoint lacks it.
AVG_SAMPLES = 4096
SQRT2 = math.sqrt(2.0)


def fir_kernel(taps: list[float], gain: float) -> torch.Tensor:
    """The separable 2-D FIR kernel of 1-D `taps`, normalised to sum to `gain`."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k * (gain / k.sum())


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int, pad: tuple[int, int]) -> torch.Tensor:
    """Zero-stuff by `up`, pad each spatial side by `pad`, and filter every channel by `kernel`.

    The semantics of StyleGAN2's `upfirdn2d` with down=1 (a true convolution: kernel flipped).
    """
    n, c, h, w = x.shape
    if up > 1:
        stuffed = x.new_zeros(n, c, h * up, w * up)
        stuffed[:, :, ::up, ::up] = x
        x = stuffed
    # One depthwise convolution (groups = channels): several times faster on CPU than folding
    # the channels into the batch; an even pad is the convolution's own (no padded copy).
    taps = kernel.flip(0, 1).to(x.dtype)[None, None].expand(c, 1, *kernel.shape).contiguous()
    if pad[0] == pad[1]:
        return F.conv2d(x, taps, padding=pad[0], groups=c)
    return F.conv2d(F.pad(x, [pad[0], pad[1], pad[0], pad[1]]), taps, groups=c)


class FIRFilter(nn.Module):
    """An upfirdn2d step with its kernel as a buffer (rosinality's `Blur` and `Upsample`)."""

    def __init__(self, up: int, pad: tuple[int, int], gain: float) -> None:
        super().__init__()
        self.up, self.pad = up, pad
        self.register_buffer("kernel", fir_kernel([1.0, 3.0, 3.0, 1.0], gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, self.up, self.pad)


class PixelNorm(nn.Module):
    """Normalise each latent to unit root-mean-square."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """A linear layer with equalised learning rate, optionally followed by scaled leaky ReLU."""

    def __init__(
        self, in_dim: int, out_dim: int, lr_mul: float = 1.0, bias_init: float = 0.0,
        activate: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), bias_init))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale) + self.bias * self.lr_mul
        return F.leaky_relu(out, 0.2) * SQRT2 if self.activate else out


class ModulatedConv(nn.Module):
    """rosinality's ModulatedConv2d, computed as a plain convolution of the modulated input.

    The convolution runs with the base weight as stored (a view, no scaled copy); its scale and
    the demodulation are one per-sample, per-output-channel gain applied afterwards.
    """

    def __init__(
        self, c_in: int, c_out: int, kernel: int, style_dim: int, demodulate: bool,
        upsample: bool,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, c_out, c_in, kernel, kernel))
        self.modulation = EqualLinear(style_dim, c_in, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(c_in * kernel * kernel)
        self.padding = kernel // 2
        self.demodulate = demodulate
        self.upsample = upsample
        if upsample:
            # rosinality's pad for a 4-tap blur after a stride-2 transposed conv of size `kernel`
            p = (4 - 2) - (kernel - 1)
            self.blur = FIRFilter(1, ((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)

    def style(self, w: torch.Tensor) -> torch.Tensor:
        """Per-input-channel style scales [N, C_in] of latents `w`."""
        return self.modulation(w)

    def unscaled(self, key: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The modulated input `key` convolved with the base `weight` (upsampled and blurred
        for an upsampling layer), before the scale and the demodulation."""
        if self.upsample:
            return self.blur(F.conv_transpose2d(key, weight[0].transpose(0, 1), stride=2))
        return F.conv2d(key, weight[0], padding=self.padding)

    def gain(self, weight: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The factor [N, C_out] on `unscaled`: the weight's scale, times the demodulation
        1 / sqrt(sum (scale w s)^2 + 1e-8) of each sample's modulated weight when demodulating."""
        if not self.demodulate:
            return style.new_full((style.shape[0], weight.shape[1]), self.scale)
        energy = style.pow(2) @ weight[0].pow(2).sum(dim=(2, 3)).T
        return self.scale * torch.rsqrt(self.scale**2 * energy + 1e-8)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.style(w)
        out = self.unscaled(x * style[:, :, None, None], self.weight)
        return out * self.gain(self.weight, style)[:, :, None, None]


class NoiseInjection(nn.Module):
    """The learned multiple of a noise map added to a layer's output (applied by StyledConv)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))


class FusedLeakyReLU(nn.Module):
    """The bias of a layer's leaky ReLU 0.2 with gain sqrt(2) (applied by StyledConv)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))


class StyledConv(nn.Module):
    """A rewritable layer: modulated conv, noise, bias and activation.

    `forward(x, w, noise)` equals `rewrite_value(rewrite_key(x, w, noise), conv.weight, x, w,
    noise)`; the engine calls the two halves to evaluate the layer with an edited weight.
    """

    def __init__(self, c_in: int, c_out: int, style_dim: int, upsample: bool) -> None:
        super().__init__()
        self.conv = ModulatedConv(c_in, c_out, 3, style_dim, demodulate=True, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(c_out)

    def rewrite_key(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The key map: the input feature scaled by the style, per input channel."""
        return x * self.conv.style(w)[:, :, None, None]

    def rewrite_value(
        self, key: torch.Tensor, weight: torch.Tensor, x: torch.Tensor, w: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        """The layer output for `key` when the base weight is `weight`: sqrt(2) leaky_relu(gain
        conv + bias + noise weight * noise), with sqrt(2) folded into each term (three passes
        over the map, each keeping its channels-last layout)."""
        gain = self.conv.gain(weight, self.conv.style(w))[:, :, None, None] * SQRT2
        bias = self.activate.bias[None, :, None, None] * SQRT2
        out = torch.addcmul(bias, self.conv.unscaled(key, weight), gain)
        out = out.addcmul_(noise, self.noise.weight * SQRT2)
        return F.leaky_relu(out, 0.2, inplace=True)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.rewrite_value(self.rewrite_key(x, w, noise), self.conv.weight, x, w, noise)


class ToRGB(nn.Module):
    """A 1x1 modulated conv to RGB (no demodulation), added to the upsampled previous image."""

    def __init__(self, c_in: int, style_dim: int, upsample: bool) -> None:
        super().__init__()
        self.conv = ModulatedConv(c_in, 3, 1, style_dim, demodulate=False, upsample=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        if upsample:
            self.upsample = FIRFilter(2, (2, 1), gain=4.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        out = self.conv(x, w) + self.bias
        return out if skip is None else out + self.upsample(skip)


class ConstantInput(nn.Module):
    """The learned 4x4 input map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, 4, 4))

    def forward(self, batch: int) -> torch.Tensor:
        """The map for a batch, channels-last: the layout the CPU's convolutions run fastest
        in, which every layer after it keeps."""
        return self.input.expand(batch, -1, -1, -1).contiguous(memory_format=torch.channels_last)


class StyleGAN2Net(nn.Module):
    """The synthesis network with rosinality's module names; one latent w drives every layer.

    `channels[j]` is the depth at resolution 4 * 2**j.
    """

    def __init__(self, style_dim: int, n_mlp: int, channels: list[int]) -> None:
        super().__init__()
        self.style = nn.Sequential(
            PixelNorm(),
            *(EqualLinear(style_dim, style_dim, LR_MLP, activate=True) for _ in range(n_mlp)),
        )
        self.input = ConstantInput(channels[0])
        self.conv1 = StyledConv(channels[0], channels[0], style_dim, upsample=False)
        self.to_rgb1 = ToRGB(channels[0], style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            self.convs.append(StyledConv(c_in, c_out, style_dim, upsample=True))
            self.convs.append(StyledConv(c_out, c_out, style_dim, upsample=False))
            self.to_rgbs.append(ToRGB(c_out, style_dim, upsample=True))
        self.noises = nn.Module()
        for i in range(2 * len(channels) - 1):
            side = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, side, side))
        self.register_buffer("latent_avg", torch.zeros(style_dim))

    def forward(self, z: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        w = self.style(z)
        if truncation is not None and truncation != 1:
            w = self.latent_avg + truncation * (w - self.latent_avg)
        return self.synthesis(w.unsqueeze(1).expand(-1, self.num_ws, -1))

    @property
    def num_ws(self) -> int:
        """How many ws a w+ latent holds (rosinality's layout: each to_rgb shares the w of the
        convolution after it)."""
        return 2 * len(self.to_rgbs) + 2

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """The image for one w per layer [N, num_ws, style_dim] (w+), in forward order."""
        noise = [getattr(self.noises, f"noise_{i}") for i in range(2 * len(self.to_rgbs) + 1)]
        x = self.conv1(self.input(ws.shape[0]), ws[:, 0], noise[0])
        image = self.to_rgb1(x, ws[:, 1], None)
        for i, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * i](x, ws[:, 2 * i + 1], noise[2 * i + 1])
            x = self.convs[2 * i + 1](x, ws[:, 2 * i + 2], noise[2 * i + 2])
            image = to_rgb(x, ws[:, 2 * i + 3], image)
        return image


class StyleGAN2(Generator):
    """A StyleGAN2 generator: z ~ N(0, I), truncation toward `latent_avg`, output in [-1, 1]."""

    family = "stylegan2"
    default_truncation = 0.5

    def latent_space(self) -> LatentSpace:
        """w+ (one w per layer) and every noise map."""
        noise = tuple(f"noises.{name}" for name, _ in self.net.noises.named_buffers())
        return LatentSpace("w", (self.net.num_ws, self.z_dim), noise)

    def to_latent(self, z: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        """The w of each latent (truncated toward `latent_avg`), repeated for every layer."""
        with torch.no_grad():
            w = self.net.style(z)
            if truncation is not None and truncation != 1:
                w = self.net.latent_avg + truncation * (w - self.net.latent_avg)
        return w.unsqueeze(1).repeat(1, self.net.num_ws, 1)

    def from_latent(self, latent: torch.Tensor, net: nn.Module) -> torch.Tensor:
        return net.synthesis(latent)


def _split(checkpoint: Any) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """The g_ema state dict and latent_avg (None if absent) of a rosinality checkpoint."""
    if isinstance(checkpoint, Mapping) and "g_ema" in checkpoint:
        state, avg = checkpoint["g_ema"], checkpoint.get("latent_avg")
    else:
        state, avg = checkpoint, None
    if not isinstance(state, Mapping) or "conv1.conv.weight" not in state:
        raise RewritingError(
            "not a StyleGAN2 checkpoint: expected rosinality's layout, a dict with 'g_ema' "
            "(and 'latent_avg') or a bare generator state dict with 'conv1.conv.weight', "
            "'style.N.weight', 'convs.N.conv.weight' and 'to_rgbs.N' tensors"
        )
    state = dict(state)
    avg = state.pop("latent_avg", avg)
    return state, avg


def _last_index(state: Mapping[str, Any], pattern: str) -> int:
    """The largest N of the keys matching `pattern` (-1 if none); gaps fail when loading."""
    return max(layer_indices(state, pattern), default=-1)


def _latent_avg(avg: Any, style_dim: int) -> torch.Tensor:
    """The stored latent_avg as a vector of `style_dim` numbers."""
    if not isinstance(avg, torch.Tensor) or avg.numel() != style_dim:
        raise RewritingError(f"StyleGAN2 latent_avg must hold {style_dim} numbers")
    return avg.reshape(style_dim)


def build(checkpoint: Any, entry: ModelEntry, sha256: str) -> StyleGAN2:
    """Build the network from the checkpoint's shapes (each checked, and the network's whole
    layout compared with the file's, before anything is allocated) and load its weights."""
    state, avg = _split(checkpoint)
    style_dim = declared_size(state, "style.1.weight", 1, TITLE, MAX_LATENT_DIM)
    n_mlp = check_count(_last_index(state, r"style\.(\d+)\.weight"),
                        f"{TITLE} mapping layers (style.N.weight)", 1, MAX_LAYERS)
    n_convs = _last_index(state, r"convs\.(\d+)\.conv\.weight") + 1
    if n_convs % 2:
        raise RewritingError(
            f"StyleGAN2 checkpoint lacks the tensor 'convs.{n_convs}.conv.weight' "
            "(styled convolutions come in pairs)"
        )
    check_doublings(n_convs // 2, TITLE)
    channels = [declared_size(state, "conv1.conv.weight", 1, TITLE)]
    channels += [declared_size(state, f"convs.{2 * j}.conv.weight", 1, TITLE)
                 for j in range(n_convs // 2)]
    own = ("latent_avg",) if avg is None else ()
    if avg is not None:
        state["latent_avg"] = _latent_avg(avg, style_dim)
    net = build_matching(lambda: StyleGAN2Net(style_dim, n_mlp, channels), state, TITLE, own)
    if avg is None:
        with torch.no_grad():
            z = torch.randn(AVG_SAMPLES, style_dim, generator=torch.Generator().manual_seed(0))
            net.latent_avg.copy_(net.style(z).mean(dim=0))
    layers = []
    for n in range(2, n_convs + 3):
        module = "conv1" if n == 2 else f"convs.{n - 3}"
        conv = net.get_submodule(module).conv
        side = 4 * 2 ** ((n - 1) // 2)
        key_side = side // 2 if conv.upsample else side
        layers.append(
            LayerSpec(
                name=f"layer{n}", module=module, weight=f"{module}.conv.weight", key_axis=2,
                key_channels=conv.weight.shape[2], value_channels=conv.weight.shape[1],
                key_grid=(key_side, key_side), value_grid=(side, side), linear=False,
            )
        )
    default = entry.default_layer or layers[len(layers) // 2].name
    if default not in {spec.name for spec in layers}:
        raise RewritingError(f"StyleGAN2 model {entry.name!r} has no layer {default!r}")
    size = 4 * 2 ** (len(channels) - 1)
    return StyleGAN2(entry.name, net, layers, default, style_dim, sha256, (size, size))


NVIDIA_NC = "nvidia-source-code-license-nc"
NVIDIA_NOTE = "NVIDIA weights, Nvidia Source Code License-NC: non-commercial use only"
TRAINED_WITH_NVIDIA = "trained with NVIDIA's StyleGAN code: non-commercial use only"
RECTANGULAR = ("StyleGAN-Human draws 2:1 (rectangular) images, which the square StyleGAN2 "
               "plugins do not build yet")
PAPER_URL = "http://rewriting.csail.mit.edu/data/models/stylegan2_{}.pt"
HUB_REPO = "aaronb/StyleGAN2"


def _paper(tag: str, size: int, license: str, note: str, layer: str | None) -> ModelEntry:
    """A checkpoint of the paper's authors; `tag` is "dataset-<sha256 prefix>"."""
    dataset, digest = tag.rsplit("-", 1)
    return ModelEntry(
        name=f"stylegan2-{dataset}", family="stylegan2",
        source=UrlFile(PAPER_URL.format(tag), sha256=digest), license=license,
        description=f"{size}px StyleGAN2 {dataset}, the checkpoint of the rewriting paper; {note}",
        default_layer=layer, resolution=size,
    )


def _hub(dataset: str, size: int, layer: str | None, nbytes: int | None = None) -> ModelEntry:
    """A config-f conversion in the Hub repository aaronb/StyleGAN2."""
    return ModelEntry(
        name=f"stylegan2-{dataset}-hub", family="stylegan2",
        source=HubFile(HUB_REPO, f"stylegan2-{dataset}-config-f.pt", revision="main"),
        license=NVIDIA_NC,
        description=f"{size}px StyleGAN2 config-f {dataset} (rosinality conversion of NVIDIA's "
        f"release, Hub {HUB_REPO}); {NVIDIA_NOTE}",
        default_layer=layer, size_bytes=nbytes, resolution=size,
    )


def _hub_extra(name: str, filename: str, size: int, what: str,
               unsupported: str | None = None) -> ModelEntry:
    """A rosinality-format file in aaronb/StyleGAN2 beyond the config-f set (DragGAN's list)."""
    return ModelEntry(
        name=f"stylegan2-{name}-hub", family="stylegan2",
        source=HubFile(HUB_REPO, filename, revision="main"), license=NVIDIA_NC,
        description=f"{size}px {what} (rosinality conversion, Hub {HUB_REPO}); "
        f"{TRAINED_WITH_NVIDIA}",
        resolution=size, unsupported=unsupported,
    )


HUB_EXTRAS = (
    *(_hub_extra(f"{d}-ada", f"ada/{d}.pt", 1024 if d == "ffhq" else 512, f"StyleGAN2-ADA {d}")
      for d in ("afhqcat", "afhqdog", "afhqwild", "brecahad", "ffhq", "metfaces")),
    *(_hub_extra(f"{a}-sd", f"self_distill/{a}_{size}.pt", size,
                 f"self-distilled StyleGAN2 {a} (Mokady et al. 2022)")
      for a, size in (("bicycles", 256), ("dogs", 1024), ("elephants", 512), ("giraffes", 512),
                      ("horses", 256), ("lions", 512), ("parrots", 512))),
    *(_hub_extra(f"human-{size}", f"human/v2_{size}.pt", size, "StyleGAN-Human v2", RECTANGULAR)
      for size in (512, 1024)),
)

AUTHORS_NOTE = "trained for the paper (not an NVIDIA release); license unstated, research use"

PLUGIN = Plugin(
    family="stylegan2",
    build=build,
    description="StyleGAN2, rosinality PyTorch layout (g_ema + latent_avg); plain PyTorch",
    models=(
        _paper("church-e8ca9fd0", 256, NVIDIA_NC, NVIDIA_NOTE, "layer8"),
        _paper("horse-499b5380", 256, NVIDIA_NC, NVIDIA_NOTE, "layer8"),
        _paper("kitchen-b3a526e9", 256, "unknown", AUTHORS_NOTE, None),
        _paper("faces-2858cc2e", 1024, NVIDIA_NC, NVIDIA_NOTE, "layer10"),
        _paper("bedroom-6fa55a6e", 256, "unknown", AUTHORS_NOTE, None),
        _paper("car-3659b4b6", 512, NVIDIA_NC, NVIDIA_NOTE, None),
        _paper("cat-d8dc98b2", 256, NVIDIA_NC, NVIDIA_NOTE, None),
        _paper("places-a3b72d71", 256, "unknown", AUTHORS_NOTE, None),
        _hub("church", 256, "layer8", 120_878_283),
        _hub("horse", 256, "layer8"),
        _hub("cat", 256, None),
        _hub("car", 512, None),
        _hub("ffhq", 1024, "layer10"),
        *HUB_EXTRAS,
    ),
)
