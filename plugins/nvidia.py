"""What NVIDIA's StyleGAN2-ADA and StyleGAN3 generators share, in plain PyTorch (no custom ops).

The checkpoint these plugins build from is plain data, whichever file it came from (a network
pickle read by `zoo.nvidia_pickle`, or a folder written by `convert`): the generator's
constructor kwargs (`nvidia_kwargs`), its tensors by NVIDIA's module paths (`nvidia_state`) and,
from pickles, each module's class name (`nvidia_classes`). Module and tensor names below follow
NVIDIA's, so the stored state loads as is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rewriting.errors import RewritingError
from rewriting.generator import Generator, LatentSpace, LayerSpec
from rewriting.limits import (
    MAX_CONFIG_BYTES,
    MAX_LABELS,
    MAX_LATENT_DIM,
    MAX_LAYERS,
    MAX_RESOLUTION,
    MAX_TAPS,
    check_choice,
    check_count,
    check_real,
    parse_json,
)

from .base import ModelEntry

#: Activation functions of NVIDIA's `bias_act`, with their default gains.
ACTIVATION_GAINS = {"linear": 1.0, "relu": math.sqrt(2.0), "lrelu": math.sqrt(2.0)}


def activate(x: torch.Tensor, activation: str, gain: float = 1.0, slope: float = 0.2,
             clamp: float | None = None) -> torch.Tensor:
    """NVIDIA's `bias_act` after the bias: activation, gain, then clamping to [-clamp, clamp]."""
    if activation == "lrelu":
        x = F.leaky_relu(x, slope)
    elif activation == "relu":
        x = F.relu(x)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


#: A check of one constructor argument: given the value and its name for the message, the
#: value to use, or a one-line refusal.
Check = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Arg:
    """A constructor argument of NVIDIA's code: its default and the check its value must pass."""

    default: Any
    check: Check


def whole(low: int, high: int) -> Check:
    """Check: an int from `low` to `high`."""
    return lambda value, what: check_count(value, what, low, high)


def real(low: float, high: float) -> Check:
    """Check: a finite int or float from `low` to `high`."""
    return lambda value, what: check_real(value, what, low, high)


def optional(check: Check) -> Check:
    """Check: None, or a value that passes `check`."""
    return lambda value, what: None if value is None else check(value, what)


def choice(*names: str) -> Check:
    """Check: one of `names`."""
    return lambda value, what: check_choice(value, what, names)


def resolution(value: Any, what: str) -> int:
    """Check: an image side, a power of two from 4 to MAX_RESOLUTION."""
    if check_count(value, what, 4, MAX_RESOLUTION) & (value - 1):
        raise RewritingError(f"{what} must be a power of 2, got {value}")
    return value


def taps(value: Any, what: str) -> list[float]:
    """Check: a resampling filter, 1 to MAX_TAPS finite numbers (only its length shapes the
    network; the stored, normalised filter is loaded)."""
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_TAPS:
        raise RewritingError(f"{what} must be a list of 1 to {MAX_TAPS} numbers")
    return [check_real(tap, f"{what} tap", -(2.0**16), 2.0**16)  # NVIDIA's: [1, 3, 3, 1]
            for tap in value]


def nested(value: Any, what: str) -> dict[str, Any]:
    """Check: nested constructor arguments, a dict (None: none); each is checked by `take`."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RewritingError(f"{what} must be a dict of constructor arguments")
    return dict(value)


#: The generator's own constructor arguments, the same in both families.
GENERATOR_ARGS = {
    "z_dim": Arg(None, whole(1, MAX_LATENT_DIM)),
    "c_dim": Arg(0, whole(0, MAX_LABELS)),
    "w_dim": Arg(None, whole(1, MAX_LATENT_DIM)),
    "img_resolution": Arg(None, resolution),
    "img_channels": Arg(3, whole(1, 4)),  # grey, RGB or RGBA
    "mapping_kwargs": Arg({}, nested),
}
#: The mapping network's arguments (`num_layers` gets each family's default).
MAPPING_ARGS = {
    "num_layers": Arg(8, whole(1, MAX_LAYERS)),
    "embed_features": Arg(None, optional(whole(1, MAX_LATENT_DIM))),
    "layer_features": Arg(None, optional(whole(1, MAX_LATENT_DIM))),
    "activation": Arg("lrelu", choice(*ACTIVATION_GAINS)),
    "lr_multiplier": Arg(0.01, real(1e-4, 100.0)),  # NVIDIA's: 0.01
    "w_avg_beta": Arg(None, optional(real(0.0, 1.0))),  # training only
}


def upfirdn2d(
    x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1,
    padding: Sequence[int] = (0, 0, 0, 0), gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero-stuffing, pad (negative = crop) [x0, x1, y0, y1], FIR-filter, downsample.

    `f` is a 2-D kernel, or 1-D taps applied separably; it is applied as a convolution
    (flipped), with `gain` spread over the passes as NVIDIA's reference does.
    """
    n, c, h, w = x.shape
    if up > 1:
        stuffed = x.new_zeros(n, c, h * up, w * up)
        stuffed[:, :, ::up, ::up] = x
        x = stuffed
    x0, x1, y0, y1 = (int(p) for p in padding)
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]
    if f is not None:
        taps = (f * gain ** (f.ndim / 2)).to(x.dtype).flip(list(range(f.ndim)))
        taps = taps[None, None].expand(c, 1, *taps.shape)
        if f.ndim == 2:
            x = F.conv2d(x, taps.contiguous(), groups=c)
        else:
            x = F.conv2d(x, taps.unsqueeze(2).contiguous(), groups=c)
            x = F.conv2d(x, taps.unsqueeze(3).contiguous(), groups=c)
    elif gain != 1:
        x = x * gain
    return x[:, :, ::down, ::down]


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """NVIDIA's equalised-learning-rate linear layer with an optional activation."""

    def __init__(self, in_features: int, out_features: int, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias: bool = True) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.bias is None:
            return activate(x.matmul(w.t()), self.activation, ACTIVATION_GAINS[self.activation])
        b = self.bias * self.bias_gain if self.bias_gain != 1 else self.bias
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t()) + b.unsqueeze(0)
        return activate(x, self.activation, ACTIVATION_GAINS[self.activation])


class MappingNetwork(nn.Module):
    """z (and a label c) to `num_ws` copies of w; truncation pulls w toward the stored w_avg."""

    def __init__(
        self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
        embed_features: int | None = None, layer_features: int | None = None,
        activation: str = "lrelu", lr_multiplier: float = 0.01,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.num_ws, self.num_layers = z_dim, c_dim, num_ws, num_layers
        embed = (w_dim if embed_features is None else embed_features) if c_dim else 0
        hidden = w_dim if layer_features is None else layer_features
        features = [z_dim + embed] + [hidden] * (num_layers - 1) + [w_dim]
        if c_dim:
            self.embed = FullyConnectedLayer(c_dim, embed)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, truncation: float | None = None
                ) -> torch.Tensor:
        parts = [normalize_2nd_moment(z.float())] if self.z_dim else []
        if self.c_dim:
            if c is None or c.shape[1] != self.c_dim:
                raise RewritingError(f"this generator needs class labels of width {self.c_dim}")
            parts.append(normalize_2nd_moment(self.embed(c.float())))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation is not None and truncation != 1:
            x = self.w_avg.lerp(x, truncation)
        return x


class NvidiaNet(nn.Module):
    """Mapping then synthesis. `z` holds z_dim latent columns, then c_dim label columns.

    The constructor kwargs ride along as the buffer `config_json` (UTF-8 JSON bytes), so any
    state dict of the network (exported or published edits) describes its own architecture.
    """

    def __init__(self, mapping: MappingNetwork, synthesis: nn.Module,
                 kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.synthesis = synthesis
        self.mapping = mapping
        self.register_buffer("config_json", encode_config(kwargs))

    def forward(self, z: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        z_dim = self.mapping.z_dim
        if z.shape[1] != z_dim + self.mapping.c_dim:
            raise RewritingError(
                f"latents have {z.shape[1]} columns; this generator takes {z_dim} "
                f"(+ {self.mapping.c_dim} label columns)"
            )
        c = z[:, z_dim:] if self.mapping.c_dim else None
        return self.synthesis(self.mapping(z[:, :z_dim], c, truncation))


class NvidiaGenerator(Generator):
    """A generator from NVIDIA's code: truncation toward `w_avg`; class labels ride on z.

    For a conditional model (c_dim > 0) each latent is z followed by a one-hot label; the
    sampler's class (`label`, a build option) is the same for every sample number.
    """

    default_truncation = 0.5

    def __init__(self, *args: Any, c_dim: int = 0, label: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if c_dim and not 0 <= label < c_dim:
            raise RewritingError(f"class label {label} is out of range 0..{c_dim - 1}")
        self.c_dim = c_dim
        self.label = label

    def latent_space(self) -> LatentSpace:
        """w+ (one w per synthesis input) and the stored noise maps, if any."""
        noise = tuple(name for name, _ in self.net.synthesis.named_buffers()
                      if name.endswith("noise_const"))
        num_ws = self.net.mapping.num_ws
        w_dim = self.net.mapping.w_avg.shape[0]
        return LatentSpace("w", (num_ws, w_dim), tuple(f"synthesis.{n}" for n in noise))

    def to_latent(self, z: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        """The ws of each latent (with its label columns), truncated toward `w_avg`."""
        z_dim = self.net.mapping.z_dim
        c = z[:, z_dim:] if self.c_dim else None
        with torch.no_grad():
            return self.net.mapping(z[:, :z_dim], c, truncation)

    def from_latent(self, latent: torch.Tensor, net: nn.Module) -> torch.Tensor:
        return net.synthesis(latent)

    def latents(self, indices: Sequence[int], seed: int = 1) -> torch.Tensor:
        """Latent codes of the given sample numbers (the paper's numbering), with the label."""
        z = super().latents(indices, seed)
        if not self.c_dim:
            return z
        return torch.cat([z, with_labels(z.shape[0], self.c_dim, self.label, z.device)], dim=1)


def encode_config(kwargs: Mapping[str, Any]) -> torch.Tensor:
    """Constructor kwargs as a uint8 tensor of their JSON text."""
    text = json.dumps(dict(kwargs), sort_keys=True).encode()
    return torch.tensor(list(text), dtype=torch.uint8)


def decode_config(tensor: torch.Tensor, title: str) -> dict[str, Any]:
    """The kwargs `encode_config` stored: a uint8 vector of at most MAX_CONFIG_BYTES bytes of
    JSON, read under the JSON limits."""
    if tensor.dtype != torch.uint8 or tensor.dim() != 1 or tensor.numel() > MAX_CONFIG_BYTES:
        raise RewritingError(f"{title} weights: 'config_json' is not a vector of at most "
                             f"{MAX_CONFIG_BYTES} bytes")
    kwargs = parse_json(tensor.numpy().tobytes(), f"{title} weights' config_json")
    if not isinstance(kwargs, dict):
        raise RewritingError(f"{title} weights: 'config_json' does not hold constructor kwargs")
    return kwargs


def with_labels(count: int, c_dim: int, label: int, device: torch.device) -> torch.Tensor:
    """`count` one-hot rows of class `label` on `device`."""
    c = torch.zeros(count, c_dim, device=device)
    c[:, label] = 1.0
    return c


def checkpoint_parts(checkpoint: Any, title: str) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """The constructor kwargs, tensors and class names of an NVIDIA generator checkpoint.

    Also reads a plain state dict of the network (an exported or published edit), whose
    `config_json` buffer holds the kwargs.
    """
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("config_json"), torch.Tensor):
        state = dict(checkpoint)
        return decode_config(state.pop("config_json"), title), state, {}
    if not isinstance(checkpoint, Mapping) or "nvidia_state" not in checkpoint:
        raise RewritingError(
            f"not a {title} checkpoint: expected an NVIDIA network pickle (.pkl) or a folder "
            "made by `python -m rewriting convert`"
        )
    kwargs, state = checkpoint.get("nvidia_kwargs"), checkpoint["nvidia_state"]
    classes = checkpoint.get("nvidia_classes") or {}
    if not isinstance(kwargs, Mapping):
        raise RewritingError(f"{title} checkpoint lacks the generator's constructor kwargs")
    if not isinstance(state, Mapping) or not isinstance(classes, Mapping):
        raise RewritingError(f"{title} checkpoint: its tensors or class names are not a dict")
    return dict(kwargs), dict(state), dict(classes)


def assemble(
    cls: type[NvidiaGenerator], net: NvidiaNet, layers: list[LayerSpec], kwargs: Mapping[str, Any],
    entry: ModelEntry, sha256: str, title: str,
) -> NvidiaGenerator:
    """Wrap `net` (built and loaded by `build_matching`) as a generator of class `cls`."""
    default = entry.default_layer or layers[len(layers) // 2].name
    if default not in {spec.name for spec in layers}:
        raise RewritingError(f"{title} model {entry.name!r} has no layer {default!r}")
    size = kwargs["img_resolution"]
    return cls(
        entry.name, net, layers, default, kwargs["z_dim"], sha256, (size, size),
        c_dim=kwargs.get("c_dim", 0), label=int(entry.options.get("label", 0)),
    )


def take(options: Any, allowed: Mapping[str, Arg], where: str) -> dict[str, Any]:
    """The arguments `allowed` names, each from `options` or its default, checked; an unknown
    argument is an error."""
    options = nested(options, where)
    unknown = sorted(str(name)[:40] for name in options if name not in allowed)
    if unknown:
        raise RewritingError(f"{where}: unsupported constructor arguments {unknown[:6]}")
    return {name: arg.check(options.get(name, arg.default), f"{where} {name}")
            for name, arg in allowed.items()}


def mapping_network(top: Mapping[str, Any], num_ws: int, title: str, num_layers: int
                    ) -> MappingNetwork:
    """The mapping network of a generator's checked arguments `top` (`num_layers`: the code's
    default)."""
    allowed = {**MAPPING_ARGS, "num_layers": Arg(num_layers, MAPPING_ARGS["num_layers"].check)}
    options = take(top["mapping_kwargs"], allowed, f"{title} mapping_kwargs")
    options.pop("w_avg_beta")  # training only
    return MappingNetwork(top["z_dim"], top["c_dim"], top["w_dim"], num_ws, **options)
