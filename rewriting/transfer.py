"""The request's goal rebuilt on other samples, wherever its context key fires, and rendered.

On a sample where the context key fires, the goal is placed at the centre of the firing cells
(their response above the threshold as weights, within half a goal box of the strongest cell),
shifted by the offset the request's own goal box has from that centre on the paste sample. A
paste goal blends the copied object there; an erase goal zeroes the erased key channels there.
Goal images are the network's output with the layer's values replaced by the goal, rendered on
a private copy of the network so the shared one is never touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .features import LayerReading, read_layer
from .generator import Generator, LayerSpec, layer_value
from .goal import Goal, box_at, place_object
from .latents import NamedLatent, Sample, sample_latents
from .nethook import replace_output
from .render import RENDER_BATCH, fixed_batches, render_z


@dataclass
class SampleGoals:
    """Goals on a set of samples: targets [N, C_out, H, W] and boxes on the value grid; `rows`
    index the kept samples in `reading`, the layer read on all the samples asked for."""

    numbers: list[Sample]
    targets: torch.Tensor
    boxes: list[tuple[int, int, int, int]]
    rows: list[int]
    reading: LayerReading | None = None


def firing_centre(
    response: torch.Tensor, threshold: float, radius: int
) -> tuple[float, float] | None:
    """Centre (row, column, in key cells) of where a response map [h, w] exceeds `threshold`
    within `radius` cells of its strongest cell, weighted by the excess; None if it never does."""
    if float(response.max()) <= threshold:
        return None
    peak = int(torch.argmax(response))
    row, col = divmod(peak, response.shape[1])
    rows = torch.arange(response.shape[0], device=response.device)[:, None]
    cols = torch.arange(response.shape[1], device=response.device)[None, :]
    near = ((rows - row).abs() <= radius) & ((cols - col).abs() <= radius)
    excess = ((response.double() - threshold).clamp_min(0)) * near
    total = float(excess.sum())
    return (
        float((excess * (rows + 0.5)).sum()) / total,
        float((excess * (cols + 0.5)).sum()) / total,
    )


def goal_offset(goal: Goal, response: torch.Tensor, threshold: float, stride: int):
    """Where the goal box's centre lies from the firing centre on the paste sample (value cells);
    the box's own centre when the key does not fire there."""
    top, left, bottom, right = goal.box
    radius = math.ceil(max(bottom - top, right - left) / stride / 2)
    centre = firing_centre(response, threshold, radius)
    if centre is None:
        return 0.0, 0.0
    return (top + bottom) / 2 - centre[0] * stride, (left + right) / 2 - centre[1] * stride


def transfer_goals(
    generator: Generator,
    spec: LayerSpec,
    goal: Goal,
    weight: torch.Tensor,
    key: torch.Tensor,
    threshold: float,
    paste_keys: torch.Tensor,
    numbers: Sequence[int],
    truncation: float | None,
    weights: Mapping[str, torch.Tensor],
    seed: int = 1,
    reading: LayerReading | None = None,
) -> SampleGoals:
    """The goal rebuilt on those of `numbers` where the context key fires (see module doc).

    `paste_keys` [C_in, h, w] are the paste sample's keys; `weight` the layer's W0; `seed` the
    latent stream the numbers index; `reading` the layer already read on them under `weights`.
    """
    top, left, bottom, right = goal.box
    size = (bottom - top, right - left)
    radius = math.ceil(max(size) / spec.stride / 2)
    paste_response = torch.einsum("chw,c->hw", paste_keys.double(), key.double())
    offset = goal_offset(goal, paste_response, threshold, spec.stride)
    if reading is None:
        z = generator.latents(numbers, seed)
        reading = read_layer(generator, spec, z, truncation, weights)
    responses = torch.einsum("nchw,c->nhw", reading.keys.double(), key.double())
    if goal.erased is not None:
        erased = reading.keys.clone()
        erased[:, goal.erased] = 0
        with torch.no_grad():
            erased_values = layer_value(reading.module, erased, weight, reading.inputs)
    kept, rows, targets, boxes = [], [], [], []
    for row, number in enumerate(numbers):
        centre = firing_centre(responses[row], threshold, radius)
        if centre is None:
            continue
        middle = (centre[0] * spec.stride + offset[0], centre[1] * spec.stride + offset[1])
        values = reading.values[row]
        if goal.erased is None:
            placed = place_object(goal.copied, goal.alpha, values, middle, spec.stride)
            target, box = placed.target, placed.box
        else:
            box = box_at(middle, size, tuple(values.shape[1:]), spec.stride)
            target = values.clone()
            target[:, box[0] : box[2], box[1] : box[3]] = erased_values[
                row, :, box[0] : box[2], box[1] : box[3]
            ]
        kept.append(number)
        rows.append(row)
        targets.append(target)
        boxes.append(box)
    empty = reading.values.new_zeros(0, *reading.values.shape[1:])
    return SampleGoals(kept, torch.stack(targets) if targets else empty, boxes, rows, reading)


def goal_images(
    generator: Generator,
    spec: LayerSpec,
    goals: SampleGoals,
    truncation: float | None,
    weights: Mapping[str, torch.Tensor],
    latents: Mapping[str, NamedLatent] | None = None,
    z: torch.Tensor | None = None,
) -> torch.Tensor:
    """uint8 images [N, H, W, 3]: the network with the layer's values replaced by the goals
    (samples named by `latents` included; `z`: the samples' latents, when given)."""
    net = generator.view(weights)
    tail = generator.tail(net, spec.module)
    chunks = []
    if tail is not None:  # the goals replace the layer's whole output: only what follows runs
        dtype = generator.parameter(spec.weight).dtype
        with torch.no_grad():
            chunks = [generator.to_image(tail(batch.to(dtype))[:size]).cpu()
                      for batch, size in fixed_batches(goals.targets)]
    else:
        if z is None:
            z = sample_latents(generator, goals.numbers, latents or {})
        for start in range(0, len(goals.numbers), RENDER_BATCH):
            targets = goals.targets[start : start + RENDER_BATCH]

            def swap(_inputs: tuple, output: torch.Tensor, targets=targets) -> torch.Tensor:
                return torch.cat([targets.to(output.dtype), output[len(targets) :]])

            with replace_output(net, spec.module, swap):
                chunks.append(render_z(generator, z[start : start + RENDER_BATCH], truncation,
                                       net=net))
    if not chunks:
        return torch.zeros(0, *generator.image_size, 3, dtype=torch.uint8, device="cpu")
    return torch.cat(chunks)
