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
    holds them there (paper pitfall: an unreachable goal otherwise leaks everywhere).
    """

    target: torch.Tensor
    box: tuple[int, int, int, int]
    keep: float = 0.0

    def region(self) -> torch.Tensor:
        """The loss region as a boolean map [H, W]."""
        mask = torch.zeros(self.target.shape[1:], dtype=torch.bool)
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
    top, left, bottom, right = bounding_box(copy_mask, 1 if authors else stride)
    crop = copy_values[:, top:bottom, left:right]
    alpha = copy_mask[top:bottom, left:right]
    height, width = bottom - top, right - left
    p_top, p_left, p_bottom, p_right = bounding_box(paste_mask)
    grid_h, grid_w = paste_values.shape[1:]

    def place(lo: int, hi: int, size: int, limit: int) -> int:
        if authors:
            return max(0, min(limit - size, (lo + hi) // 2 - size // 2))
        start = round((lo + hi) / 2 - size / 2)
        start = round(start / stride) * stride
        return min(max(start, 0), (limit - size) // stride * stride)

    row, col = place(p_top, p_bottom, height, grid_h), place(p_left, p_right, width, grid_w)
    target = paste_values.clone()
    window = target[:, row : row + height, col : col + width]
    window.mul_(1 - alpha).add_(alpha * crop)
    pasted = torch.zeros(grid_h, grid_w)
    pasted[row : row + height, col : col + width] = 1.0
    return Goal(target, bounding_box(pasted, stride))


def erase_channels(keys: torch.Tensor, masks: torch.Tensor, key_energy: torch.Tensor, count: int):
    """The `count` key channels most active under the context: mean of k^2 / E[k^2] in the masks.

    `keys` [n, C_in, h, w] and `masks` [n, h, w] are the context samples' keys and coverage.
    """
    weighted = (keys.double() ** 2 * masks[:, None]).sum((0, 2, 3)) / masks.sum()
    score = weighted / key_energy.double().clamp_min(1e-12)
    return torch.topk(score, min(count, score.numel())).indices


def erase_goal(
    erased_values: torch.Tensor, paste_mask: torch.Tensor, stride: int
) -> Goal:
    """The goal of an erase: b's values recomputed from keys with the chosen channels zeroed."""
    return Goal(erased_values, bounding_box(paste_mask, stride))
