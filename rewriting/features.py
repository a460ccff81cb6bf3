"""Read a layer's keys and values for given latents, running the generator only that far."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .generator import Generator, LayerSpec, layer_key
from .nethook import run_until


@dataclass
class LayerReading:
    """Keys [N, C_in, h, w] and values [N, C_out, H, W] of a layer, the module's inputs, and
    the module itself (in a private view of the network, with the overrides it was read under)."""

    keys: torch.Tensor
    values: torch.Tensor
    inputs: tuple
    module: nn.Module


def read_layer(
    generator: Generator,
    spec: LayerSpec,
    z: torch.Tensor,
    truncation: float | None,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> LayerReading:
    """The layer's keys and values for latents `z`, under the given weight overrides."""
    net = generator.view(weights)
    record = run_until(lambda: generator.synthesize(z, truncation, net=net), net, spec.module)
    module = net.get_submodule(spec.module)
    with torch.no_grad():
        keys = layer_key(module, record.inputs)
    return LayerReading(keys=keys, values=record.output, inputs=record.inputs, module=module)
