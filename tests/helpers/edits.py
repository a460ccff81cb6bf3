"""Edits the tests share: a request that copies eyes onto eyes, and random deltas."""

from __future__ import annotations

import torch

from rewriting.delta import Delta

EYES = [20, 16, 32, 48]
EYES_TO_EYES = {
    "model": "dcgan-digiface", "layer": "main.6",
    "copy": {"sample": 12, "mask": EYES},
    "paste": {"sample": 9, "mask": EYES},
    "context": [{"sample": s, "mask": EYES} for s in (9, 0, 13)],
}


def random_delta(generator, layer: str, seed: int, rank: int = 2) -> Delta:
    """A delta of rank `rank` on `layer` large enough to change every image visibly."""
    spec = generator.layer(layer)
    weight = generator.parameter(spec.weight)
    rows = weight.movedim(spec.key_axis, 0).shape[1:]
    gen = torch.Generator().manual_seed(seed)
    directions = torch.linalg.qr(torch.randn(spec.key_channels, rank, generator=gen))[0].T
    lam = torch.randn(rank, *rows, generator=gen)
    lam *= 0.5 * weight.norm() / lam.norm()
    return Delta(spec.name, spec.weight, spec.key_axis, lam, directions.contiguous(),
                 generator.name, generator.weights_sha256)
