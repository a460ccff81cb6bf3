"""StyleGAN2-ADA (NVIDIA's stylegan2-ada-pytorch `training.networks.Generator`), plain PyTorch.

Built from the generator's constructor kwargs and stored tensors (network pickle or converted
folder): channel counts, mapping depth, architecture (`orig`, `skip`, `resnet`), conv_clamp and
label width come from the file. Noise is always the stored `noise_const` buffers (NVIDIA's
`noise_mode='const'`), so sample N never depends on its batch; float32 everywhere (fp16 is a
GPU speed choice of the original code, not part of the weights).

Rewritable layers are the synthesis convolutions `b{res}.conv0` (upsampling) and
`b{res}.conv1`. The modulated convolution is computed unfused: the key is the input scaled by
the layer's style per input channel, the memory W is the base weight [out, in, k, k] (key axis 1),
and the value the layer output after demodulation, noise, bias, activation and clamp.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewriting.errors import RewritingError
from rewriting.generator import LayerSpec
from rewriting.limits import MAX_CHANNELS, MAX_LAYERS, MAX_RESOLUTION, MAX_TAPS, check_flag

from .base import ModelEntry, Plugin, build_matching
from .nvidia import (
    ACTIVATION_GAINS,
    GENERATOR_ARGS,
    Arg,
    FullyConnectedLayer,
    NvidiaGenerator,
    NvidiaNet,
    activate,
    assemble,
    checkpoint_parts,
    choice,
    mapping_network,
    nested,
    optional,
    real,
    take,
    taps,
    upfirdn2d,
    whole,
)
from .nvidia_catalog import STYLEGAN2_ADA_MODELS

TITLE = "StyleGAN2-ADA"
#: Constructor arguments of the synthesis network and its blocks/layers: NVIDIA's defaults, and
#: what each may be.
SYNTHESIS_ARGS = {
    "channel_base": Arg(32768, whole(1, MAX_CHANNELS * MAX_RESOLUTION)),  # more: all at the max
    "channel_max": Arg(512, whole(1, MAX_CHANNELS)),
    "num_fp16_res": Arg(0, whole(0, MAX_LAYERS)),  # a GPU speed choice only
    "architecture": Arg("skip", choice("orig", "skip", "resnet")),
    "resample_filter": Arg([1, 3, 3, 1], taps),
    "conv_clamp": Arg(None, optional(real(0.0, 2.0**16))),  # NVIDIA's: 256
    "fp16_channels_last": Arg(False, check_flag),
    "kernel_size": Arg(3, whole(1, MAX_TAPS)),  # odd, checked below
    "use_noise": Arg(True, check_flag),
    "activation": Arg("lrelu", choice(*ACTIVATION_GAINS)),
}


def _filter_buffer(taps: list[float]) -> torch.Tensor:
    """A placeholder of the stored, normalised 2-D resampling filter's shape (loaded later)."""
    return torch.zeros(len(taps), len(taps))


class SynthesisLayer(nn.Module):
    """A modulated 3x3 convolution (upsampling by 2 when `up`), noise, bias, activation, clamp.

    `forward(x, w)` equals `rewrite_value(rewrite_key(x, w), weight, x, w)`.
    """

    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int, up: int,
                 options: dict[str, Any]) -> None:
        super().__init__()
        kernel = int(options["kernel_size"])
        self.up, self.padding, self.activation = up, kernel // 2, options["activation"]
        self.conv_clamp = options["conv_clamp"]
        self.use_noise = bool(options["use_noise"])
        self.affine = FullyConnectedLayer(w_dim, c_in)
        self.weight = nn.Parameter(torch.zeros(c_out, c_in, kernel, kernel))
        if self.use_noise:
            self.register_buffer("noise_const", torch.zeros(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.register_buffer("resample_filter", _filter_buffer(options["resample_filter"]))

    def rewrite_key(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The key map: the input feature scaled by the style, per input channel."""
        return x * self.affine(w)[:, :, None, None]

    def rewrite_value(self, key: torch.Tensor, weight: torch.Tensor, x: torch.Tensor,
                      w: torch.Tensor) -> torch.Tensor:
        """The layer output for `key` when the base weight is `weight`."""
        styles = self.affine(w)
        if self.up > 1:
            kernel, taps = weight.shape[-1], self.resample_filter.shape[-1]
            out = F.conv_transpose2d(key, weight.transpose(0, 1), stride=self.up)
            lo = self.padding + (taps + self.up - 1) // 2 - (kernel - 1)
            hi = self.padding + (taps - self.up) // 2 - (kernel - self.up)
            out = upfirdn2d(out, self.resample_filter, padding=(lo, hi, lo, hi), gain=self.up**2)
        else:
            out = F.conv2d(key, weight, padding=self.padding)
        energy = styles.square() @ weight.square().sum(dim=(2, 3)).t()
        out = out * (energy + 1e-8).rsqrt()[:, :, None, None]
        if self.use_noise:
            out = out + self.noise_const * self.noise_strength
        out = out + self.bias[None, :, None, None]
        return activate(out, self.activation, ACTIVATION_GAINS[self.activation],
                        clamp=self.conv_clamp)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.rewrite_value(self.rewrite_key(x, w), self.weight, x, w)


class ToRGBLayer(nn.Module):
    """A 1x1 modulated convolution to colour channels, without demodulation."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, conv_clamp: float | None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, c_in)
        self.weight = nn.Parameter(torch.zeros(c_out, c_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.weight_gain = 1 / math.sqrt(c_in)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        out = F.conv2d(x * styles[:, :, None, None], self.weight)
        return activate(out + self.bias[None, :, None, None], "linear", clamp=self.conv_clamp)


class SkipConv(nn.Module):
    """The resnet architecture's 1x1 upsampling shortcut (no bias, gain sqrt(1/2))."""

    def __init__(self, c_in: int, c_out: int, taps: list[float]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(c_out, c_in, 1, 1))
        self.register_buffer("resample_filter", _filter_buffer(taps))
        self.weight_gain = 1 / math.sqrt(c_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.weight_gain)
        taps = self.resample_filter.shape[-1]
        pad = ((taps + 1) // 2, (taps - 2) // 2)
        x = upfirdn2d(x, self.resample_filter, up=2, padding=(*pad, *pad), gain=4)
        return x * math.sqrt(0.5)


class SynthesisBlock(nn.Module):
    """One resolution: (const |) conv0 (up) , conv1, and toRGB added to the upsampled image."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, options: dict[str, Any]) -> None:
        super().__init__()
        self.c_in, self.architecture = c_in, options["architecture"]
        self.register_buffer("resample_filter", _filter_buffer(options["resample_filter"]))
        self.num_conv = 1 if c_in == 0 else 2
        if c_in == 0:
            self.const = nn.Parameter(torch.zeros(c_out, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(c_in, c_out, w_dim, resolution, 2, options)
        self.conv1 = SynthesisLayer(c_out, c_out, w_dim, resolution, 1, options)
        self.num_torgb = 1 if is_last or self.architecture == "skip" else 0
        if self.num_torgb:
            self.torgb = ToRGBLayer(c_out, img_channels, w_dim, options["conv_clamp"])
        if c_in and self.architecture == "resnet":
            self.skip = SkipConv(c_in, c_out, options["resample_filter"])

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        ws = ws.unbind(dim=1)
        if x is None:
            x = self.conv1(self.const.unsqueeze(0).repeat(ws[0].shape[0], 1, 1, 1), ws[0])
        elif self.architecture == "resnet":
            y = self.skip(x)
            x = self.conv0(x, ws[0])
            x = y + self.conv1(x, ws[1]) * math.sqrt(0.5)
        else:
            x = self.conv1(self.conv0(x, ws[0]), ws[1])
        if img is not None:
            taps = self.resample_filter.shape[-1]
            pad = ((taps + 1) // 2, (taps - 2) // 2)
            img = upfirdn2d(img, self.resample_filter, up=2, padding=(*pad, *pad), gain=4)
        if self.num_torgb:
            y = self.torgb(x, ws[self.num_conv])
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """Blocks b4 ... b{img_resolution}; block b{res} reads ws[i : i + convs + torgb]."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int,
                 options: dict[str, Any]) -> None:
        super().__init__()
        log2 = int(math.log2(img_resolution))
        self.resolutions = [2**i for i in range(2, log2 + 1)]
        base, cap = options["channel_base"], options["channel_max"]
        channels = {res: min(base // res, cap) for res in self.resolutions}
        self.num_ws = 0
        for res in self.resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels,
                res == img_resolution, options,
            )
            self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        x = img = None
        first = 0
        for res in self.resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, first : first + block.num_conv + block.num_torgb])
            first += block.num_conv
        return img


class StyleGAN2ADA(NvidiaGenerator):
    """A StyleGAN2-ADA generator: z ~ N(0, I), truncation toward `w_avg`, output in [-1, 1]."""

    family = "stylegan2-ada"


def build_net(kwargs: dict[str, Any]) -> NvidiaNet:
    """The network NVIDIA's constructor kwargs describe (weights not yet loaded), once every
    argument is checked."""
    top = take(kwargs, {**GENERATOR_ARGS, "synthesis_kwargs": Arg({}, nested)}, TITLE)
    options = take(top["synthesis_kwargs"], SYNTHESIS_ARGS, f"{TITLE} synthesis_kwargs")
    if options["kernel_size"] % 2 == 0:
        raise RewritingError(f"{TITLE} synthesis_kwargs kernel_size must be odd, "
                             f"got {options['kernel_size']}")
    if options["channel_base"] < top["img_resolution"]:
        raise RewritingError(f"{TITLE} synthesis_kwargs channel_base {options['channel_base']} "
                             f"leaves the {top['img_resolution']}-px block no channels")
    synthesis = SynthesisNetwork(top["w_dim"], top["img_resolution"], top["img_channels"],
                                 options)
    return NvidiaNet(mapping_network(top, synthesis.num_ws, TITLE, 8), synthesis, kwargs)


def layer_specs(net: NvidiaNet) -> list[LayerSpec]:
    """The rewritable convolutions `b{res}.conv0|conv1`, in order."""
    specs = []
    for res in net.synthesis.resolutions:
        for conv in ("conv0", "conv1"):
            module = f"synthesis.b{res}.{conv}"
            if not hasattr(net.synthesis.get_submodule(f"b{res}"), conv):
                continue
            weight = net.get_parameter(f"{module}.weight")
            key_side = res // 2 if conv == "conv0" else res
            specs.append(LayerSpec(
                name=f"b{res}.{conv}", module=module, weight=f"{module}.weight", key_axis=1,
                key_channels=weight.shape[1], value_channels=weight.shape[0],
                key_grid=(key_side, key_side), value_grid=(res, res), linear=False,
            ))
    return specs


def is_stylegan3(classes: dict[str, str]) -> bool:
    """StyleGAN3 generators have a Fourier-feature input layer."""
    return "SynthesisInput" in classes.values()


def build(checkpoint: Any, entry: ModelEntry, sha256: str) -> StyleGAN2ADA:
    """Build the generator from its constructor kwargs and load its stored tensors."""
    kwargs, state, classes = checkpoint_parts(checkpoint, TITLE)
    if is_stylegan3(classes) or "channel_base" in kwargs:
        raise RewritingError(f"not a {TITLE} checkpoint: this is a StyleGAN3 network "
                             "(use --family stylegan3)")
    net = build_matching(lambda: build_net(kwargs), state, TITLE, own=("config_json",))
    return assemble(StyleGAN2ADA, net, layer_specs(net), kwargs, entry, sha256, TITLE)


PLUGIN = Plugin(
    family="stylegan2-ada",
    build=build,
    models=STYLEGAN2_ADA_MODELS,
    description="StyleGAN2-ADA, NVIDIA network pickles (read without running them) or "
    "converted folders; plain PyTorch",
)
