"""How an edit changed the images: inside versus outside where the context key fires."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from .features import read_layer
from .generator import Generator, LayerSpec
from .render import render
from .stats import KeyStats

#: Held-out samples (for metrics and pictures) start here; requests use low sample numbers.
HELD_OUT_START = 1000
#: Locations fire when the context response exceeds this quantile over the statistics sample.
FIRE_QUANTILE = 0.99


def held_out_samples(count: int, exclude: Sequence[int] = ()) -> list[int]:
    """`count` sample numbers from HELD_OUT_START on, skipping those a request uses."""
    skip = set(exclude)
    numbers = range(HELD_OUT_START, HELD_OUT_START + count + len(skip))
    return [n for n in numbers if n not in skip][:count]


def firing_threshold(stats: KeyStats, key: torch.Tensor, quantile: float = FIRE_QUANTILE) -> float:
    """The response level that `quantile` of the statistics sample's locations stay below."""
    return float(torch.quantile(stats.key_sample.double() @ key.double(), quantile))


def context_response(
    generator: Generator,
    spec: LayerSpec,
    key: torch.Tensor,
    numbers: Sequence[int],
    truncation: float | None,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """How strongly the context key fires [N, h, w] at each key location of the samples."""
    keys = read_layer(generator, spec, generator.latents(numbers), truncation, weights).keys
    return torch.einsum("nchw,c->nhw", keys.double(), key.double())


def strongest(response: torch.Tensor, numbers: Sequence[int], count: int) -> list[int]:
    """The `count` of `numbers` whose response maps [N, h, w] peak highest, in ascending order."""
    order = torch.argsort(response.flatten(1).amax(1), descending=True)[:count]
    return sorted(numbers[i] for i in order.tolist())


def firing_masks(
    generator: Generator,
    spec: LayerSpec,
    key: torch.Tensor,
    threshold: float,
    numbers: Sequence[int],
    truncation: float | None,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Boolean maps [N, H, W] on the CPU (beside the images) at image resolution where the
    context key fires."""
    response = context_response(generator, spec, key, numbers, truncation, weights)
    return fired_pixels(response, threshold, spec, generator.image_size).cpu()


def fired_pixels(
    response: torch.Tensor, threshold: float, spec: LayerSpec, image_size: tuple[int, int]
) -> torch.Tensor:
    """Boolean maps [N, H, W] where response maps [N, h, w] exceed `threshold`, at image size."""
    fired = (response > threshold).float()[:, None]
    m = spec.key_margin
    fired = fired[:, :, m : fired.shape[2] - m, m : fired.shape[3] - m]  # the image's cells
    return F.interpolate(fired, size=image_size, mode="nearest")[:, 0].bool()


def change_summary(
    original: torch.Tensor, edited: torch.Tensor, fires: torch.Tensor
) -> dict[str, float]:
    """Mean absolute pixel change (0-255) of uint8 images [N, H, W, 3] inside and outside the
    firing locations [N, H, W], and over whole samples where the context key fires nowhere."""
    change = (edited.float() - original.float()).abs().mean(-1)
    inside = float(change[fires].mean()) if fires.any() else 0.0
    outside = float(change[~fires].mean()) if (~fires).any() else 0.0
    silent = ~fires.flatten(1).any(1)
    return {
        "artefacts": high_frequency_change(original, edited, fires),
        "change_inside": inside,
        "change_outside": outside,
        "selectivity": inside / max(outside, 1e-9),
        "change_not_firing": float(change[silent].mean()) if silent.any() else 0.0,
        "samples_not_firing": int(silent.sum()),
        "fires_fraction": float(fires.float().mean()),
        "held_out_samples": len(original),
    }


def change_inside_outside(
    generator: Generator,
    spec: LayerSpec,
    key: torch.Tensor,
    threshold: float,
    numbers: Sequence[int],
    truncation: float | None,
    before: Mapping[str, torch.Tensor],
    after: Mapping[str, torch.Tensor],
) -> dict[str, float]:
    """`change_summary` of held-out samples rendered before and after an edit."""
    return change_summary(
        render(generator, numbers, truncation, before),
        render(generator, numbers, truncation, after),
        firing_masks(generator, spec, key, threshold, numbers, truncation, before),
    )


#: The discrete Laplacian: the part of a change that varies from one pixel to the next.
_LAPLACIAN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
#: Pixels around the firing locations left out of `high_frequency_change` (the rule's own edge).
ARTEFACT_MARGIN = 2


def high_frequency_change(original: torch.Tensor, edited: torch.Tensor, fires: torch.Tensor
                          ) -> float:
    """Mean |Laplacian| of the pixel change (0-255) of uint8 images [N, H, W, 3] away from the
    firing locations [N, H, W]: stripes, checkerboards and noise an update adds elsewhere."""
    change = (edited.float() - original.float()).permute(0, 3, 1, 2).flatten(0, 1)[:, None]
    kernel = _LAPLACIAN.to(change.device)[None, None]
    detail = F.conv2d(F.pad(change, (1, 1, 1, 1), mode="replicate"), kernel).abs()
    detail = detail.view(len(edited), 3, *edited.shape[1:3]).mean(1)
    size = 2 * ARTEFACT_MARGIN + 1
    near = F.max_pool2d(fires[:, None].float(), size, 1, ARTEFACT_MARGIN)[:, 0].bool()
    return float(detail[~near].mean()) if (~near).any() else 0.0
