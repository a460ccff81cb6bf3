"""StyleGAN3 (NVIDIA's `training.networks_stylegan3.Generator`, configs t and r), plain PyTorch.

The layer schedule (cutoffs, stopbands, sampling rates, sizes with margins, channel counts,
up/down factors and paddings) is derived from the generator's constructor kwargs by the
alias-free design equations; the up/down low-pass filters, Fourier frequencies and phases are
the stored buffers. Filtered leaky ReLU is computed as bias, upsample-filter, leaky ReLU with
gain and clamp, then downsample-filter (NVIDIA's reference path). float32 everywhere.

Rewritable layers are the synthesis convolutions `L{i}_{size}_{channels}` (all but the final
ToRGB). Key: the input scaled per input channel by the normalised style and the stored input
magnitude gain; memory W: the base weight [out, in, k, k] (key axis 1); value: the layer output.
The feature grids include the layers' margins around the image (`key_margin`, `value_margin`:
cells outside the picture), so masks drawn on the image land on the cells that render it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rewriting.errors import RewritingError
from rewriting.generator import LayerSpec
from rewriting.limits import MAX_CHANNELS, MAX_LAYERS, MAX_RESOLUTION, MAX_TAPS, check_flag

from .base import ModelEntry, Plugin, build_matching
from .nvidia import (
    GENERATOR_ARGS,
    Arg,
    FullyConnectedLayer,
    NvidiaGenerator,
    NvidiaNet,
    activate,
    assemble,
    checkpoint_parts,
    mapping_network,
    optional,
    real,
    take,
    upfirdn2d,
    whole,
)
from .nvidia_catalog import STYLEGAN3_MODELS

TITLE = "StyleGAN3"
#: Constructor arguments of the synthesis network and its layers: NVIDIA's defaults, and what
#: each may be (cutoffs and stopbands of at least half a cycle keep every sampling rate >= 1).
SYNTHESIS_ARGS = {
    "channel_base": Arg(32768, whole(1, MAX_CHANNELS * MAX_RESOLUTION)),  # more: all at the max
    "channel_max": Arg(512, whole(1, MAX_CHANNELS)),
    "num_layers": Arg(14, whole(1, MAX_LAYERS)),
    "num_critical": Arg(2, whole(0, MAX_LAYERS)),  # fewer than num_layers, checked below
    "first_cutoff": Arg(2, real(0.5, MAX_RESOLUTION)),
    "first_stopband": Arg(2**2.1, real(0.5, MAX_RESOLUTION)),
    "last_stopband_rel": Arg(2**0.3, real(1.0, 4.0)),  # NVIDIA's: 2**0.3
    "margin_size": Arg(10, whole(0, MAX_RESOLUTION // 8)),  # NVIDIA's: 10
    "output_scale": Arg(0.25, real(1e-3, 1e3)),  # NVIDIA's: 0.25
    "num_fp16_res": Arg(4, whole(0, MAX_LAYERS)),  # a GPU speed choice only
    "conv_kernel": Arg(3, whole(1, MAX_TAPS)),
    "filter_size": Arg(6, whole(1, MAX_TAPS)),
    "lrelu_upsampling": Arg(2, whole(1, 8)),  # NVIDIA's: 2
    "use_radial_filters": Arg(False, check_flag),
    "conv_clamp": Arg(256, optional(real(0.0, 2.0**16))),  # NVIDIA's: 256
    "magnitude_ema_beta": Arg(0.999, real(0.0, 1.0)),  # training only
}


@dataclass(frozen=True)
class LayerPlan:
    """One synthesis layer's place in the alias-free schedule."""

    name: str
    is_torgb: bool
    c_in: int
    c_out: int
    in_size: int
    out_size: int
    kernel: int
    up: int
    down: int
    up_taps: int
    down_taps: int
    radial: bool
    padding: tuple[int, int, int, int]
    in_margin: int
    out_margin: int


def plan_layers(img_resolution: int, img_channels: int, o: dict[str, Any]
                ) -> tuple[dict[str, float], list[LayerPlan]]:
    """The Fourier input's (size, sampling rate, bandwidth, channels) and every layer's plan."""
    n, critical = int(o["num_layers"]), int(o["num_critical"])
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * o["last_stopband_rel"]
    exponents = np.minimum(np.arange(n + 1) / (n - critical), 1)
    cutoffs = o["first_cutoff"] * (last_cutoff / o["first_cutoff"]) ** exponents
    stopbands = o["first_stopband"] * (last_stopband / o["first_stopband"]) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    sizes = rates + o["margin_size"] * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((o["channel_base"] / 2) / cutoffs, o["channel_max"]))
    channels[-1] = img_channels
    plans = []
    for idx in range(n + 1):
        prev = max(idx - 1, 0)
        torgb = idx == n
        in_rate, out_rate = int(rates[prev]), int(rates[idx])
        tmp_rate = max(in_rate, out_rate) * (1 if torgb else o["lrelu_upsampling"])
        kernel = 1 if torgb else int(o["conv_kernel"])
        up, down = int(np.rint(tmp_rate / in_rate)), int(np.rint(tmp_rate / out_rate))
        up_taps = o["filter_size"] * up if up > 1 and not torgb else 1
        down_taps = o["filter_size"] * down if down > 1 and not torgb else 1
        in_size, out_size = int(sizes[prev]), int(sizes[idx])
        total = (out_size - 1) * down + 1 - (in_size + kernel - 1) * up + up_taps + down_taps - 2
        lo = (total + up) // 2
        c_out = int(channels[idx])
        plans.append(LayerPlan(
            name=f"L{idx}_{out_size}_{c_out}", is_torgb=torgb, c_in=int(channels[prev]),
            c_out=c_out, in_size=in_size, out_size=out_size, kernel=kernel, up=up, down=down,
            up_taps=int(up_taps), down_taps=int(down_taps),
            radial=bool(o["use_radial_filters"]) and idx < n - critical,
            padding=(lo, total - lo, lo, total - lo),
            in_margin=max((in_size - in_rate) // 2, 0),
            out_margin=max((out_size - out_rate) // 2, 0),
        ))
    first = {"size": int(sizes[0]), "sampling_rate": float(rates[0]),
             "bandwidth": float(cutoffs[0]), "channels": int(channels[0])}
    return first, plans


class SynthesisInput(nn.Module):
    """Fourier features: sinusoids at stored frequencies and phases, rotated and translated by
    the first w, band-limited, then mixed by a learned matrix."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float,
                 bandwidth: float) -> None:
        super().__init__()
        self.size, self.sampling_rate, self.bandwidth = size, sampling_rate, bandwidth
        self.weight = nn.Parameter(torch.zeros(channels, channels))
        self.affine = FullyConnectedLayer(w_dim, 4)
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", torch.zeros(channels, 2))
        self.register_buffer("phases", torch.zeros(channels))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        n = w.shape[0]
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)  # (cos, sin, tx, ty), rotation normalised
        rotate = torch.eye(3, device=w.device).repeat(n, 1, 1)
        rotate[:, 0, 0], rotate[:, 0, 1] = t[:, 0], -t[:, 1]
        rotate[:, 1, 0], rotate[:, 1, 1] = t[:, 1], t[:, 0]
        shift = torch.eye(3, device=w.device).repeat(n, 1, 1)
        shift[:, 0, 2], shift[:, 1, 2] = -t[:, 2], -t[:, 3]
        transform = rotate @ shift @ self.transform.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ transform[:, :2, 2:])[..., 0]
        freqs = self.freqs.unsqueeze(0) @ transform[:, :2, :2]
        band = self.sampling_rate / 2 - self.bandwidth
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / band).clamp(0, 1)
        theta = torch.zeros(1, 2, 3, device=w.device)
        theta[0, 0, 0] = theta[0, 1, 1] = 0.5 * self.size / self.sampling_rate
        grid = F.affine_grid(theta, [1, 1, self.size, self.size], align_corners=False)
        x = (grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)
        x = torch.sin((x + phases.unsqueeze(1).unsqueeze(2)) * (2 * math.pi))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / math.sqrt(self.weight.shape[0])).t()
        return x.permute(0, 3, 1, 2)


class SynthesisLayer(nn.Module):
    """Modulated convolution, then filtered leaky ReLU (upsample, activate, downsample).

    `forward(x, w)` equals `rewrite_value(rewrite_key(x, w), weight, x, w)`.
    """

    def __init__(self, plan: LayerPlan, w_dim: int, conv_clamp: float | None) -> None:
        super().__init__()
        self.plan, self.conv_clamp = plan, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, plan.c_in)
        self.weight = nn.Parameter(torch.zeros(plan.c_out, plan.c_in, plan.kernel, plan.kernel))
        self.bias = nn.Parameter(torch.zeros(plan.c_out))
        self.register_buffer("magnitude_ema", torch.ones([]))
        up = torch.zeros(plan.up_taps) if plan.up_taps > 1 else None
        down_shape = (plan.down_taps,) * (2 if plan.radial else 1)
        down = torch.zeros(down_shape) if plan.down_taps > 1 else None
        self.register_buffer("up_filter", up)
        self.register_buffer("down_filter", down)

    def _styles(self, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)
        if self.plan.is_torgb:
            return styles / math.sqrt(self.plan.c_in * self.plan.kernel**2)
        # NVIDIA normalises the styles' scale here; demodulation cancels it (per sample).
        return styles * styles.square().mean(dim=1, keepdim=True).rsqrt()

    def rewrite_key(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The key map: the input scaled by style and input magnitude gain, per input channel."""
        return x * (self._styles(w) * self.magnitude_ema.rsqrt())[:, :, None, None]

    def rewrite_value(self, key: torch.Tensor, weight: torch.Tensor, x: torch.Tensor,
                      w: torch.Tensor) -> torch.Tensor:
        """The layer output for `key` when the base weight is `weight`."""
        p = self.plan
        if not p.is_torgb:
            weight = weight * weight.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()
        out = F.conv2d(key, weight, padding=p.kernel - 1)
        if not p.is_torgb:
            energy = self._styles(w).square() @ weight.square().sum(dim=(2, 3)).t()
            out = out * (energy + 1e-8).rsqrt()[:, :, None, None]
        out = out + self.bias[None, :, None, None]
        out = upfirdn2d(out, self.up_filter, up=p.up, padding=p.padding, gain=p.up**2)
        gain, slope = (1.0, 1.0) if p.is_torgb else (math.sqrt(2.0), 0.2)
        out = activate(out, "lrelu", gain, slope=slope, clamp=self.conv_clamp)
        return upfirdn2d(out, self.down_filter, down=p.down)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.rewrite_value(self.rewrite_key(x, w), self.weight, x, w)


class SynthesisNetwork(nn.Module):
    """The Fourier input, then layers L0 ... L{num_layers} each reading one w; output scaled."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int,
                 options: dict[str, Any]) -> None:
        super().__init__()
        first, plans = plan_layers(img_resolution, img_channels, options)
        self.input = SynthesisInput(w_dim, first["channels"], first["size"],
                                    first["sampling_rate"], first["bandwidth"])
        self.layer_names = [p.name for p in plans]
        for plan in plans:
            setattr(self, plan.name, SynthesisLayer(plan, w_dim, options["conv_clamp"]))
        self.num_ws = len(plans) + 1
        self.output_scale = float(options["output_scale"])

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        ws = ws.unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:], strict=True):
            x = getattr(self, name)(x, w)
        return x * self.output_scale if self.output_scale != 1 else x


class StyleGAN3(NvidiaGenerator):
    """A StyleGAN3 generator: z ~ N(0, I), truncation toward `w_avg`, output in [-1, 1]."""

    family = "stylegan3"


def build_net(kwargs: dict[str, Any]) -> NvidiaNet:
    """The network NVIDIA's constructor kwargs describe (weights not yet loaded), once every
    argument is checked."""
    top = take(kwargs, {**GENERATOR_ARGS, **SYNTHESIS_ARGS}, TITLE)
    options = {name: top[name] for name in SYNTHESIS_ARGS}
    if options["num_critical"] >= options["num_layers"]:
        raise RewritingError(f"{TITLE} num_critical must be below num_layers "
                             f"({options['num_layers']}), got {options['num_critical']}")
    synthesis = SynthesisNetwork(top["w_dim"], top["img_resolution"], top["img_channels"],
                                 options)
    return NvidiaNet(mapping_network(top, synthesis.num_ws, TITLE, 2), synthesis, kwargs)


def layer_specs(net: NvidiaNet) -> list[LayerSpec]:
    """The rewritable convolutions `L{i}_{size}_{channels}` (ToRGB excluded), in order."""
    specs = []
    for name in net.synthesis.layer_names:
        plan = net.synthesis.get_submodule(name).plan
        if plan.is_torgb:
            continue
        module = f"synthesis.{name}"
        specs.append(LayerSpec(
            name=name, module=module, weight=f"{module}.weight", key_axis=1,
            key_channels=plan.c_in, value_channels=plan.c_out,
            key_grid=(plan.in_size, plan.in_size), value_grid=(plan.out_size, plan.out_size),
            linear=False, key_margin=plan.in_margin, value_margin=plan.out_margin,
        ))
    return specs


def build(checkpoint: Any, entry: ModelEntry, sha256: str) -> StyleGAN3:
    """Build the generator from its constructor kwargs and load its stored tensors."""
    kwargs, state, classes = checkpoint_parts(checkpoint, TITLE)
    if classes and "SynthesisInput" not in classes.values() or "synthesis_kwargs" in kwargs:
        raise RewritingError(f"not a {TITLE} checkpoint: this is a StyleGAN2-ADA network "
                             "(use --family stylegan2-ada)")
    net = build_matching(lambda: build_net(kwargs), state, TITLE, own=("config_json",))
    return assemble(StyleGAN3, net, layer_specs(net), kwargs, entry, sha256, TITLE)


PLUGIN = Plugin(
    family="stylegan3",
    build=build,
    models=STYLEGAN3_MODELS,
    description="StyleGAN3 (configs t and r), NVIDIA network pickles (read without running "
    "them) or converted folders; plain PyTorch",
)
