"""Where a session's context rule fires: its context key, the samples it fires on, the best ones."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rewriting.errors import RewritingError
from rewriting.features import read_layer
from rewriting.latents import distinct, sample_latents
from rewriting.masks import mask_image, to_grid
from rewriting.metrics import firing_masks
from rewriting.rewrite import context_keys, context_rule
from rewriting.stats import KeyStats

from .session import Session


def probe(session: Session, stats: KeyStats, rank: int = 1) -> tuple[torch.Tensor, float]:
    """The context key of the current context selections and the level above which it fires."""
    context = session.context or ((session.paste,) if session.paste else ())
    if not context:
        raise RewritingError("brush a few places where the rule applies and press Context first")
    generator, spec = session.generator, session.spec
    numbers = distinct([s.sample for s in context])
    reading = read_layer(generator, spec, sample_latents(generator, numbers, session.latents),
                         session.truncation, session.weights())
    masks = [
        (s, to_grid(mask_image(s.mask, generator.image_size, s.paper), spec.key_grid,
                    spec.key_margin))
        for s in context
    ]
    keys, weights = context_keys(reading, {n: i for i, n in enumerate(numbers)}, masks)
    rule = context_rule(stats, keys, weights, rank)
    return rule.key, rule.threshold


def matches(
    session: Session, key: torch.Tensor, threshold: float, numbers: Sequence[int]
) -> np.ndarray:
    """Boolean maps [N, H, W] where the context key fires on the given samples."""
    return firing_masks(
        session.generator, session.spec, key, threshold, numbers, session.truncation,
        session.weights(),
    ).numpy()


def search(
    session: Session, key: torch.Tensor, numbers: Sequence[int], count: int, batch: int = 64
) -> list[tuple[int, float]]:
    """The `count` samples where the context key responds most strongly, with that response."""
    generator, spec, weights = session.generator, session.spec, session.weights()
    scores = []
    for first in range(0, len(numbers), batch):
        chunk = list(numbers[first : first + batch])
        keys = read_layer(generator, spec, generator.latents(chunk), session.truncation, weights)
        scores.append(torch.einsum("nchw,c->nhw", keys.keys.double(), key.double()).amax((1, 2)))
    best = torch.cat(scores).topk(min(count, len(numbers)))
    return [(int(numbers[i]), float(v)) for v, i in zip(best.values, best.indices, strict=True)]
