"""The goal of an edit: the keys it concerns and the values they should produce.

Copy and paste (paper, section 2): the copied object is sample a's value map cropped to the
copy brush's box with the brush as soft alpha; the target is sample b's value map with that
crop blended in at the centre of the paste brush's box. Boxes sit on the key grid of
upsampling layers so that copied and pasted cells see the same transposed-convolution taps.
The authors' construction (`authors=True`) places the crop of the copy mask's positive box
without snapping it, and snaps only the loss box outwards to the key grid.
Erase: the target is the layer's own output for b's keys with the channels that fire most
under the context zeroed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .masks import bounding_box


@dataclass
class Goal:
    """Target value map [C_out, H, W] and the box (top, left, bottom, right) it changes.

    Outside the box the target is the sample's own values; `keep` weighs how strongly the loss
    holds them there (paper pitfall: an unreachable goal otherwise leaks everywhere). A paste
    goal also keeps the copied object (values [C_out, h, w] and alpha [h, w]), an erase goal the
    zeroed key channels, so the same goal can be rebuilt on other samples.
    """

    target: torch.Tensor
    box: tuple[int, int, int, int]
    keep: float = 0.0
    copied: torch.Tensor | None = None
    alpha: torch.Tensor | None = None
    erased: torch.Tensor | None = None

    def region(self) -> torch.Tensor:
        """The loss region as a boolean map [H, W]."""
        mask = torch.zeros(self.target.shape[1:], dtype=torch.bool, device=self.target.device)
        top, left, bottom, right = self.box
        mask[top:bottom, left:right] = True
        return mask

    def weights(self) -> torch.Tensor:
        """Per-location loss weights [H, W]: 1 in the box, `keep` elsewhere."""
        return torch.where(self.region(), 1.0, self.keep)


def paste_goal(
    copy_values: torch.Tensor,
    copy_mask: torch.Tensor,
    paste_values: torch.Tensor,
    paste_mask: torch.Tensor,
    stride: int,
    authors: bool = False,
) -> Goal:
    """Blend the copied crop (soft alpha) into the paste sample's values at the paste centre.

    Masks are coverage maps at the value grid; `stride` is the value cells per key cell.
    `authors`: their construction (the crop's box unsnapped, its top-left at the paste box's
    centre minus half its size, the loss box widened outwards to whole key cells).
    """
    copy_mask, paste_mask = copy_mask.to(copy_values.device), paste_mask.to(copy_values.device)
    top, left, bottom, right = bounding_box(copy_mask, 1 if authors else stride)
    crop = copy_values[:, top:bottom, left:right]
    alpha = copy_mask[top:bottom, left:right]
    p_top, p_left, p_bottom, p_right = bounding_box(paste_mask)
    if not authors:
        centre = ((p_top + p_bottom) / 2, (p_left + p_right) / 2)
        return place_object(crop, alpha, paste_values, centre, stride)
    height, width = bottom - top, right - left
    grid_h, grid_w = paste_values.shape[1:]
    row = max(0, min(grid_h - height, (p_top + p_bottom) // 2 - height // 2))
    col = max(0, min(grid_w - width, (p_left + p_right) // 2 - width // 2))
    target = paste_values.clone()
    window = target[:, row : row + height, col : col + width]
    window.mul_(1 - alpha).add_(alpha * crop)
    pasted = paste_values.new_zeros(grid_h, grid_w)
    pasted[row : row + height, col : col + width] = 1.0
    return Goal(target, bounding_box(pasted, stride), copied=crop, alpha=alpha)


def place_object(
    crop: torch.Tensor,
    alpha: torch.Tensor,
    values: torch.Tensor,
    centre: tuple[float, float],
    stride: int,
) -> Goal:
    """Blend `crop` [C, h, w] with soft `alpha` [h, w] into `values` [C, H, W] centred at
    `centre` (row, column in value cells), on the key grid and clamped inside the map."""
    box = box_at(centre, tuple(alpha.shape), tuple(values.shape[1:]), stride)
    target = values.clone()
    window = target[:, box[0] : box[2], box[1] : box[3]]
    window.mul_(1 - alpha).add_(alpha * crop)
    return Goal(target, box, copied=crop, alpha=alpha)


def box_at(
    centre: tuple[float, float], size: tuple[int, int], grid: tuple[int, int], stride: int
) -> tuple[int, int, int, int]:
    """A box of `size` cells centred at `centre`, on the key grid, clamped inside `grid`."""

    def place(middle: float, extent: int, limit: int) -> int:
        start = round(round(middle - extent / 2) / stride) * stride
        return min(max(start, 0), (limit - extent) // stride * stride)

    row, col = place(centre[0], size[0], grid[0]), place(centre[1], size[1], grid[1])
    return row, col, row + size[0], col + size[1]


def erase_channels(keys: torch.Tensor, masks: torch.Tensor, key_energy: torch.Tensor, count: int):
    """The `count` key channels most active under the context: mean of k^2 / E[k^2] in the masks.

    `keys` [n, C_in, h, w] and `masks` [n, h, w] are the context samples' keys and coverage.
    """
    weighted = (keys.double() ** 2 * masks[:, None]).sum((0, 2, 3)) / masks.sum()
    score = weighted / key_energy.double().clamp_min(1e-12)
    return torch.topk(score, min(count, score.numel())).indices


def erase_goal(
    erased_values: torch.Tensor, paste_mask: torch.Tensor, stride: int, channels: torch.Tensor
) -> Goal:
    """The goal of an erase: b's values recomputed from keys with `channels` zeroed."""
    return Goal(erased_values, bounding_box(paste_mask, stride), erased=channels)
