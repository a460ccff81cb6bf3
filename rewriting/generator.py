"""What the engine needs to know about a generator: its network, rewritable layers and sampler.

Plugins subclass `Generator`; the engine never sees a concrete architecture. A rewritable layer
is read as an associative memory: its *key* is the input feature at a location, its *value* the
output feature, and `weight` the memory W that maps one to the other.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import RewritingError
from .limits import MAX_SAMPLE_NUMBER
from .netview import network_view
from .photo import FaceFraming


@dataclass(frozen=True)
class LayerSpec:
    """One rewritable layer.

    `module` is the module whose forward maps keys to values; `weight` the parameter path of W.
    `key_axis` is the axis of W indexed by key channels. `linear` means the value is a
    convolution-like linear function of W (each output channel applies the same linear map to
    its own slice of W), so the solver can use the closed form. `key_margin` and `value_margin`
    count the cells on each side of a grid that lie outside the image (StyleGAN3 computes its
    features on a margin around the picture); image masks map to the cells inside them.
    """

    name: str
    module: str
    weight: str
    key_axis: int
    key_channels: int
    value_channels: int
    key_grid: tuple[int, int]
    value_grid: tuple[int, int]
    linear: bool
    key_margin: int = 0
    value_margin: int = 0

    @property
    def stride(self) -> int:
        """How many value cells one key cell spans along each axis (2 on upsampling layers)."""
        return self.value_grid[0] // self.key_grid[0]


@dataclass(frozen=True)
class LatentSpace:
    """What projection may optimise for one image: a latent of `shape`, plus noise buffers.

    `kind` is "z" (the sampler's input) or "w" (the mapped style latent; one row per synthesis
    layer, w+, when shape[0] > 1). `noise` lists buffer paths that projection may fit too.
    """

    kind: str
    shape: tuple[int, ...]
    noise: tuple[str, ...] = ()


def layer_key(module: nn.Module, inputs: tuple) -> torch.Tensor:
    """The key map [N, C_in, H, W] a layer module computes from its forward inputs."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return inputs[0]
    return module.rewrite_key(*inputs)


def layer_value(
    module: nn.Module, key: torch.Tensor, weight: torch.Tensor, inputs: tuple
) -> torch.Tensor:
    """The value map the layer produces from `key` with weight `weight` (f(k; W) in the paper)."""
    if isinstance(module, nn.ConvTranspose2d):
        return F.conv_transpose2d(
            key, weight, module.bias, module.stride, module.padding, module.output_padding,
            module.groups, module.dilation,
        )
    if isinstance(module, nn.Conv2d):
        return F.conv2d(
            key, weight, module.bias, module.stride, module.padding, module.dilation, module.groups
        )
    return module.rewrite_value(key, weight, *inputs)


def paper_latents(z_dim: int, indices: Sequence[int], seed: int = 1) -> torch.Tensor:
    """Sample N is row N of RandomState(seed).standard_normal((rows, z_dim)), as float32.

    This is the numbering of the paper's interface; NumPy's legacy generator gives the same
    numbers on every platform, and row N does not depend on how many rows are drawn.
    """
    indices = [int(i) for i in indices]
    if not indices:
        return torch.zeros(0, z_dim, device="cpu")
    if min(indices) < 0 or max(indices) > MAX_SAMPLE_NUMBER:
        raise RewritingError(
            f"sample numbers go from 0 to {MAX_SAMPLE_NUMBER}, got {min(indices)}..{max(indices)}"
        )
    rows = np.random.RandomState(seed).standard_normal((max(indices) + 1, z_dim))
    return torch.from_numpy(rows.astype(np.float32)[indices])


#: The shared generators of this process by the key their loader gave them (`share`).
_SHARED: weakref.WeakValueDictionary[str, Generator] = weakref.WeakValueDictionary()


def shared_generator(key: str) -> Generator:
    """The shared generator this process holds under `key`, or a clear error."""
    found = _SHARED.get(key)
    if found is None:
        raise RewritingError(f"no model {key[:200]} is loaded in this process")
    return found


class Generator:
    """A loaded generator: `net(z, truncation)` gives raw output; layers say what may be rewritten.

    Plugins set the attributes and may override `latents`, `to_image` and `check_truncation`.
    The base network is never modified by the engine: edits and hooks go on per-call views.
    """

    family: str = ""
    #: Whether the family has a truncation trick, and its default when it does.
    default_truncation: float | None = None
    #: Largest sample number a request may name.
    max_sample: int = MAX_SAMPLE_NUMBER
    #: How the training images frame a face, for a face model (its catalog entry says).
    face_framing: FaceFraming | None = None
    #: The dtype renders autocast to on a GPU (float32: none); the CPU renders in float32.
    render_dtype: torch.dtype = torch.float32

    def __init__(
        self,
        name: str,
        net: nn.Module,
        layers: Sequence[LayerSpec],
        default_layer: str,
        z_dim: int,
        weights_sha256: str,
        image_size: tuple[int, int],
    ) -> None:
        self.name = name
        self.net = net.eval().requires_grad_(False)
        self.layers = {spec.name: spec for spec in layers}
        self.default_layer = default_layer
        self.z_dim = z_dim
        self.weights_sha256 = weights_sha256
        self.image_size = image_size

    @property
    def device(self) -> torch.device:
        """Where the network's tensors are, and so where the engine computes for it."""
        for tensor in itertools.chain(self.net.parameters(), self.net.buffers()):
            return tensor.device
        return torch.device("cpu")

    def to(self, device: torch.device | str) -> Generator:
        """Move the network to `device` (before it is shared: never while others use it)."""
        self.net.to(device)
        return self

    def share(self, key: str) -> None:
        """Register this generator as the process's shared copy under `key`: pickled (a
        visitor's state sent to a ZeroGPU worker), it is then a reference to the copy the other
        process holds under that key, never a copy of its network."""
        self._share_key = key
        _SHARED[key] = self

    def __reduce_ex__(self, protocol: int) -> tuple:
        key = getattr(self, "_share_key", None)
        return super().__reduce_ex__(protocol) if key is None else (shared_generator, (key,))

    def layer(self, name: str | None) -> LayerSpec:
        """The named rewritable layer (the default when None), or a clear error."""
        name = name or self.default_layer
        if name not in self.layers:
            raise RewritingError(
                f"model {self.name!r} has no rewritable layer {name!r}; "
                f"layers: {', '.join(self.layers)}"
            )
        return self.layers[name]

    def parameter(self, path: str) -> torch.Tensor:
        """The base value of a parameter by its path."""
        return self.net.get_parameter(path)

    def check_truncation(self, truncation: float | None) -> float | None:
        """Validate a requested truncation; None means the family's default."""
        if self.default_truncation is None:
            if truncation not in (None, 1.0):
                raise RewritingError(f"model {self.name!r} has no truncation trick")
            return None
        truncation = self.default_truncation if truncation is None else float(truncation)
        if not 0.0 <= truncation <= 1.0:
            raise RewritingError(f"truncation must be between 0 and 1, got {truncation}")
        return truncation

    def latents(self, indices: Sequence[int], seed: int = 1) -> torch.Tensor:
        """Latent codes of the given sample numbers on the generator's device (drawn on the
        CPU, so the same on every machine)."""
        return paper_latents(self.z_dim, indices, seed).to(self.device)

    def view(self, weights: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
        """A private view of the network for one call, with `weights` overriding its tensors.

        Hooks and overrides go on views only: the shared `net` is never modified, so visitors
        with different edits can render at the same time.
        """
        return network_view(self.net, weights)

    def synthesize(
        self,
        z: torch.Tensor,
        truncation: float | None = None,
        weights: Mapping[str, torch.Tensor] | None = None,
        net: nn.Module | None = None,
    ) -> torch.Tensor:
        """Raw output for latents `z` through `net` (a view), or a view with `weights`."""
        if net is None:
            net = self.view(weights) if weights else self.net
        elif weights:
            raise ValueError("give either weights or a view, not both")
        with torch.no_grad():
            return net(z, truncation=truncation)

    def tail(self, net: nn.Module, module: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """What follows `net.<module>` (a view's layer module): its output to raw output; None
        where the family's forward pass cannot restart there (callers render from latents)."""
        return None

    def latent_space(self) -> LatentSpace:
        """Where projection searches; the base is z itself (DCGAN, Progressive GAN)."""
        return LatentSpace("z", (self.z_dim,))

    def to_latent(self, z: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        """Points of the latent space [N, *shape] that sample latents `z` map to."""
        return z

    def from_latent(self, latent: torch.Tensor, net: nn.Module) -> torch.Tensor:
        """Raw output of `net` (a view) for points of the latent space, differentiably."""
        return net(latent)

    def to_image(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw output in [-1, 1] to uint8 images [N, H, W, 3]."""
        pixels = ((raw.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return pixels.permute(0, 2, 3, 1).contiguous()
