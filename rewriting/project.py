"""Project a photo into a generator: find the latent whose image reproduces it.

Objective, minimised over the plugin's latent space (z, or w+ and then its noise maps):
sum over scales s of mean((G(latent) - photo)^2 at 1/2^s of the size), plus
STRUCTURE_WEIGHT * (1 - SSIM(G(latent), photo)), plus small priors that keep z near the
sampling shell and noise maps uncorrelated. The best few of CANDIDATES sample latents start
Adam; the one that ends lowest goes on alone, with the noise maps freed when the family has them.
The photo's latent is found on the original model and rendered under any edit stack.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from . import __version__
from .atomic import write_atomically
from .errors import RewritingError
from .generator import Generator
from .latents import LATENT_FORMAT, NamedLatent, check_latent, read_latent_file
from .quality import psnr, ssim, uint8_ssim
from .render import render
from .threads import one_thread

#: Starting latents come from this seed's stream, never from the samples' own (seed 1).
PROJECT_SEED = 7
CANDIDATES = 64
STARTS = 4
STEPS = 200
#: Share of the steps spent on all starts; the best start then continues alone.
SHARED_SHARE = 0.6
LEARNING_RATE = {"z": 0.08, "w": 0.1}
NOISE_LEARNING_RATE = 0.05
SCALES = 3
STRUCTURE_WEIGHT = 0.2
Z_PRIOR = 1e-3
NOISE_PRIOR = 1e2
#: Samples averaged into the trivial baseline (the model's mean image): 512 at 64x64, fewer
#: for larger models (as many pixels in all), never under 16.
MEAN_IMAGE_PIXELS = 512 * 64 * 64

Progress = Callable[[int, int], None]


@dataclass
class Projection:
    """A photo's latent on a model, its reconstruction and how close it came."""

    latent: torch.Tensor
    noise: dict[str, torch.Tensor]
    kind: str
    model: str
    weights_sha256: str
    reconstruction: np.ndarray
    metrics: dict = field(default_factory=dict)

    def named(self) -> NamedLatent:
        """The latent as a request may name it (a paste or context sample)."""
        return NamedLatent(self.latent, self.model, self.weights_sha256, dict(self.noise))

    def save(self, path: str | Path) -> None:
        """Write the latent and noise maps as safetensors, with the model they belong to
        (atomically)."""
        tensors = self.named().tensors()
        metadata = {"format": LATENT_FORMAT, "kind": self.kind, "model": self.model,
                    "weights_sha256": self.weights_sha256, "tool_version": __version__}
        write_atomically(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def to_unit(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 images [N, H, W, 3] as float [N, 3, H, W] in [-1, 1] on `device`."""
    pixels = torch.as_tensor(np.asarray(images), device=device).permute(0, 3, 1, 2).float()
    return pixels / 127.5 - 1


def loss_per_image(raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The reconstruction objective of each image [N] (pixels at SCALES scales + structure)."""
    shown = raw.clamp(-1, 1)  # what the image shows; values beyond it are clipped away
    loss = STRUCTURE_WEIGHT * (1 - ssim((shown + 1) / 2, (target + 1) / 2))
    x, y = shown, target.expand_as(raw)
    for _ in range(SCALES):
        loss = loss + (x - y).square().flatten(1).mean(1)
        if min(x.shape[2:]) < 8:
            break
        x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return loss


def noise_penalty(noise: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """How far noise maps are from white: neighbour correlations at every scale, mean, scale."""
    total = next(iter(noise.values())).new_zeros(())
    for n in noise.values():
        x = n.reshape(1, 1, *n.shape[-2:])
        while True:
            total = total + (x * x.roll(1, 2)).mean().square() + (x * x.roll(1, 3)).mean().square()
            if x.shape[-1] <= 8:
                break
            x = F.avg_pool2d(x, 2)
        total = total + n.mean().square() + (n.square().mean() - 1).square()
    return total


def _schedule(step: int, steps: int, peak: float) -> float:
    """Learning rate: a short warm-up, then a cosine decay to zero."""
    t = step / max(1, steps)
    ramp = min(1.0, t / 0.05)
    return peak * ramp * 0.5 * (1 + math.cos(math.pi * t))


def _fit(
    generator: Generator, variable: torch.Tensor, full: Callable[[torch.Tensor], torch.Tensor],
    noise: dict[str, torch.Tensor], target: torch.Tensor, steps: int, first: int, total: int,
    progress: Progress | None,
) -> torch.Tensor:
    """Adam on `variable` (the latent is `full(variable)`) and on the noise maps, if any are
    given, for `steps` steps; the last losses."""
    kind = generator.latent_space().kind
    params = [variable, *noise.values()]
    for p in params:
        p.requires_grad_(True)
    groups = [{"params": [variable], "peak": LEARNING_RATE[kind]}]
    if noise:
        groups.append({"params": list(noise.values()), "peak": NOISE_LEARNING_RATE})
    optimizer = torch.optim.Adam(groups, betas=(0.9, 0.999))
    net = generator.view(noise) if noise else generator.net
    losses = variable.new_zeros(len(variable))
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = _schedule(step, steps, group["peak"])
        losses = loss_per_image(generator.from_latent(full(variable), net), target)
        objective = losses.sum()
        if kind == "z":
            objective = objective + Z_PRIOR * (variable.square().mean(1) - 1).square().sum()
        if noise:
            objective = objective + NOISE_PRIOR * noise_penalty(noise)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        if progress is not None:
            progress(first + step + 1, total)
    for p in params:
        p.requires_grad_(False)
    return losses.detach()


def project(
    generator: Generator,
    photo: np.ndarray,
    steps: int = STEPS,
    starts: int = STARTS,
    progress: Progress | None = None,
    per_layer: bool = True,
) -> Projection:
    """The latent of `generator` (unedited) whose image best reproduces `photo` (uint8 [H, W, 3]
    at the model's size); `progress(done, total)` is told after each step and may raise to stop.
    `per_layer` False fits one w shared by every layer (w instead of w+) and no noise maps.
    """
    if tuple(photo.shape) != (*generator.image_size, 3):
        raise RewritingError(
            f"the photo must be {generator.image_size[1]}x{generator.image_size[0]} RGB for "
            f"{generator.name}, got shape {tuple(photo.shape)}"
        )
    if steps < 1 or starts < 1:
        raise RewritingError("projection needs at least one step and one starting point")
    with one_thread():
        return _project(generator, photo, steps, starts, progress, per_layer)


def _project(
    generator: Generator, photo: np.ndarray, steps: int, starts: int, progress: Progress | None,
    per_layer: bool,
) -> Projection:
    started, cpu = time.perf_counter(), time.process_time()
    space = generator.latent_space()
    target = to_unit(photo[None], generator.device)
    truncation = generator.check_truncation(None)
    candidates = generator.to_latent(
        generator.latents(range(max(CANDIDATES, starts)), PROJECT_SEED), truncation
    )
    with torch.no_grad():
        first = torch.cat([loss_per_image(generator.from_latent(c, generator.net), target)
                           for c in candidates.split(16)])
    order = torch.argsort(first)[: min(starts, len(candidates))]
    shared_w = space.kind == "w" and not per_layer

    def full(variable: torch.Tensor) -> torch.Tensor:
        return variable.expand(-1, *space.shape) if shared_w else variable

    variable = (candidates[order, :1] if shared_w else candidates[order]).clone()
    shared = max(1, round(steps * SHARED_SHARE)) if len(order) > 1 else 0
    if shared:
        losses = _fit(generator, variable, full, {}, target, shared, 0, steps, progress)
        variable = variable[int(torch.argmin(losses))][None].clone()
    free = space.noise if per_layer else ()
    noise = {p: _buffer(generator, p).clone() for p in free}
    _fit(generator, variable, full, noise, target, steps - shared, shared, steps, progress)
    latent = full(variable).clone()
    with torch.no_grad():
        raw = generator.from_latent(latent, generator.view(noise) if noise else generator.net)
    image = generator.to_image(raw)[0].cpu().numpy()
    shown = torch.from_numpy(image)[None]
    mean = mean_image(generator)[None]
    photo_t = torch.from_numpy(np.ascontiguousarray(photo))[None]
    metrics = {
        "psnr": float(psnr(shown, photo_t)),
        "ssim": float(uint8_ssim(shown, photo_t)),
        "psnr_mean_image": float(psnr(mean, photo_t)),
        "ssim_mean_image": float(uint8_ssim(mean, photo_t)),
        "mean_image_samples": mean_image_samples(generator),
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "latent_space": space.kind, "latent_shape": list(space.shape),
        "noise_maps": len(noise), "steps": steps, "starts": starts, "per_layer": per_layer,
        "model": generator.name,
    }
    return Projection(latent.cpu(), {k: v.cpu() for k, v in noise.items()}, space.kind,
                      generator.name, generator.weights_sha256, image, metrics)


def _buffer(generator: Generator, path: str) -> torch.Tensor:
    """A buffer of the base network by its path."""
    return generator.net.get_buffer(path)


_MEAN_IMAGES: dict[tuple, torch.Tensor] = {}
_MEAN_LOCK = threading.Lock()


def mean_image_samples(generator: Generator) -> int:
    """How many samples the model's mean image averages."""
    height, width = generator.image_size
    return max(16, min(512, MEAN_IMAGE_PIXELS // (height * width)))


def mean_image(generator: Generator, samples: int | None = None) -> torch.Tensor:
    """The model's mean image (uint8 [H, W, 3]) over `samples` samples (by default
    `mean_image_samples`) at its default truncation; computed once per model."""
    samples = samples or mean_image_samples(generator)
    truncation = generator.check_truncation(None)
    key = (generator.name, generator.weights_sha256, truncation, samples)
    with _MEAN_LOCK:
        if key not in _MEAN_IMAGES:
            total = torch.zeros(*generator.image_size, 3, dtype=torch.float64, device="cpu")
            for start in range(0, samples, 64):
                numbers = range(start, min(samples, start + 64))
                total += render(generator, numbers, truncation).double().sum(0)
            _MEAN_IMAGES[key] = (total / samples).round().to(torch.uint8)
        return _MEAN_IMAGES[key]


def load_latent(path: str | Path, generator: Generator) -> Projection:
    """A latent file written by `project`, checked against the model it is rendered with."""
    named = check_latent(read_latent_file(path), generator, str(path))
    return Projection(named.latent, dict(named.noise), generator.latent_space().kind,
                      generator.name, generator.weights_sha256, np.zeros(0), {})


def render_latent(
    generator: Generator,
    projection: Projection,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """uint8 images [N, H, W, 3] on the CPU of a projection's latents under `weights` (an edit
    stack's)."""
    device = generator.device
    net = generator.view({**(weights or {}), **{k: v.to(device) for k, v in
                                                projection.noise.items()}})
    with torch.no_grad():
        raw = generator.from_latent(projection.latent.to(device), net)
    return generator.to_image(raw).cpu()
