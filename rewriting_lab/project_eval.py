"""How well projection works: on generated samples (whose latent is known) and on photos."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from rewriting.generator import Generator
from rewriting.project import STEPS, Projection, project, render_latent
from rewriting.render import render


def summary(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Means (and the spread of PSNR) over per-image rows."""
    psnrs = [r["psnr"] for r in rows]
    gains = [r["psnr"] - r["psnr_mean_image"] for r in rows]
    return {
        "images": len(rows),
        "psnr_mean": statistics.mean(psnrs),
        "psnr_min": min(psnrs),
        "psnr_max": max(psnrs),
        "ssim_mean": statistics.mean(r["ssim"] for r in rows),
        "psnr_mean_image_mean": statistics.mean(r["psnr_mean_image"] for r in rows),
        "ssim_mean_image_mean": statistics.mean(r["ssim_mean_image"] for r in rows),
        "gain_over_mean_image_db": statistics.mean(gains),
        "gain_over_mean_image_min_db": min(gains),
        "seconds_per_image_mean": statistics.mean(r["seconds"] for r in rows),
        "seconds_per_image_max": max(r["seconds"] for r in rows),
        "cpu_seconds_per_image_mean": statistics.mean(r["cpu_seconds"] for r in rows),
    }


def on_samples(
    generator: Generator,
    numbers: Sequence[int],
    steps: int = STEPS,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Project rendered samples (held out: their latents never start the search) back into the
    model; per-image metrics, their summary, and the latent error where the space is z."""
    truncation = generator.check_truncation(None)
    images = render(generator, numbers, truncation)
    truth = generator.to_latent(generator.latents(numbers), truncation)
    spread = float((truth - truth.mean(0)).flatten(1).norm(dim=1).mean())
    rows = []
    for number, image, known in zip(numbers, images, truth, strict=True):
        found = project(generator, image.numpy(), steps=steps)
        error = float((found.latent[0] - known.cpu()).norm())
        rows.append({**_figures(found), "sample": number, "latent_error": error,
                     "latent_error_over_spread": error / max(spread, 1e-12)})
        if log:
            log(f"sample {number}: PSNR {rows[-1]['psnr']:.2f} dB (mean image "
                f"{rows[-1]['psnr_mean_image']:.2f}), {rows[-1]['seconds']:.1f} s")
    return {"rows": rows, "summary": summary(rows), "steps": steps}


def edit_effect(
    generator: Generator,
    projections: Sequence[Projection],
    numbers: Sequence[int],
    weights: Mapping[str, torch.Tensor],
) -> dict[str, float]:
    """Mean absolute pixel change (0-255) an edit makes on projected photos and on samples."""

    def change(before: torch.Tensor, after: torch.Tensor) -> float:
        return float((after.float() - before.float()).abs().mean())

    truncation = generator.check_truncation(None)
    photos = [change(render_latent(generator, p), render_latent(generator, p, weights))
              for p in projections]
    samples = change(render(generator, numbers, truncation),
                     render(generator, numbers, truncation, weights))
    return {"change_projected_photos": float(np.mean(photos)),
            "change_generated_samples": samples}


def _figures(found: Projection) -> dict[str, float]:
    keys = ("psnr", "ssim", "psnr_mean_image", "ssim_mean_image", "seconds", "cpu_seconds")
    return {k: found.metrics[k] for k in keys}
