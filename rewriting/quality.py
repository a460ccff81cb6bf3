"""How close a reconstruction is to a photo: PSNR and SSIM, in torch, batched."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: SSIM's Gaussian window (Wang et al. 2004): sigma 1.5, cut at 3.5 sigma (11 taps).
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def psnr(
    a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, peak: float = 255.0
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image pair [N, ...] (infinite when equal)."""
    a, b = (x.double() if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x, float))
            for x in (a, b))
    error = (a - b).square().flatten(1).mean(1)
    return 10 * torch.log10(peak**2 / error)


def _window(radius: int, channels: int, like: torch.Tensor) -> torch.Tensor:
    taps = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    g = torch.exp(-(taps**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, -1, -1)


def ssim(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Mean structural similarity of each image pair [N, C, H, W] with values in [0, peak].

    Gaussian-weighted local statistics over the valid window positions, averaged over channels
    and positions; differentiable (projection uses 1 - SSIM as its structural loss).
    """
    channels = a.shape[1]
    radius = min(SSIM_RADIUS, (min(a.shape[2:]) - 1) // 2)
    window = _window(radius, channels, a)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * peak) ** 2, (SSIM_K2 * peak) ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return index.flatten(1).mean(1)


def uint8_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM of uint8 images [N, H, W, 3]."""
    def unit(x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2).double() / 255

    return ssim(unit(a), unit(b))
