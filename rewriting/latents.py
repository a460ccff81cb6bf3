"""Latents a request names instead of sample numbers (projected photos), and the one resolver
that turns samples, numbered or named, into the latents the generator is run on."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .errors import RewritingError
from .generator import Generator

LATENT_FORMAT = "rewriting-latent/1"
#: A sample is a number, or the name of a latent the request carries ("photo").
Sample = int | str
#: What a latent's name may look like.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


@dataclass(frozen=True, eq=False)
class NamedLatent:
    """Points of a model's latent space [N, *shape] and noise maps, as `project` found them."""

    latent: torch.Tensor
    model: str
    weights_sha256: str
    noise: Mapping[str, torch.Tensor] = field(default_factory=dict)

    def digest(self) -> str:
        """sha256 of the latent and noise maps (names, shapes and float32 bytes)."""
        h = hashlib.sha256()
        for name, tensor in [("latent", self.latent), *sorted(self.noise.items())]:
            h.update(f"{name}:{list(tensor.shape)};".encode())
            h.update(tensor.float().contiguous().numpy().tobytes())
        return h.hexdigest()

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The tensors to store: `latent` and `noise:<buffer>`, each name after `prefix`."""
        return {f"{prefix}latent": self.latent.contiguous(),
                **{f"{prefix}noise:{k}": v.contiguous() for k, v in self.noise.items()}}


def from_tensors(
    tensors: Mapping[str, torch.Tensor], model: str, weights_sha256: str, where: str
) -> NamedLatent:
    """A latent from its stored tensors (`latent`, `noise:<buffer>`), finite floats, or a clear
    error naming `where`."""
    if "latent" not in tensors or any(k != "latent" and not k.startswith("noise:")
                                      for k in tensors):
        raise RewritingError(f"{where} holds {sorted(tensors)}, not a latent and noise maps")
    for name, tensor in tensors.items():
        if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
            raise RewritingError(f"{where}: {name} is not finite floating-point numbers")
    noise = {k.removeprefix("noise:"): v.float() for k, v in tensors.items() if k != "latent"}
    return NamedLatent(tensors["latent"].float(), model, weights_sha256, noise)


def read_latent_file(path: str | Path) -> NamedLatent:
    """A latent file written by `project` (not yet checked against a model), or a clear error."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    except FileNotFoundError:
        raise RewritingError(f"latent file {path} does not exist") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise RewritingError(f"cannot read latent file {path}: {err}") from None
    if meta.get("format") != LATENT_FORMAT or "latent" not in tensors:
        raise RewritingError(f"{path} is not a latent file written by `project`")
    return from_tensors(tensors, str(meta.get("model")), str(meta.get("weights_sha256")),
                        f"latent file {path}")


def check_latent(named: NamedLatent, generator: Generator, where: str) -> NamedLatent:
    """`named`, if it was projected into this generator and fits its latent space."""
    if named.weights_sha256 != generator.weights_sha256:
        raise RewritingError(
            f"{where} was projected into {named.model!r}, not into {generator.name!r} "
            "(weights differ): render it with the model it was projected into"
        )
    space = generator.latent_space()
    latent = named.latent
    if latent.dim() != len(space.shape) + 1 or tuple(latent.shape[1:]) != space.shape:
        raise RewritingError(
            f"latent in {where} has shape {list(latent.shape)}; {generator.name} takes "
            f"[N, {', '.join(map(str, space.shape))}]"
        )
    for name, value in named.noise.items():
        if name not in space.noise or value.shape != generator.net.get_buffer(name).shape:
            raise RewritingError(f"{where} has a noise map {name!r} that "
                                 f"{generator.name} does not take")
    return named


def check_sample_latent(named: NamedLatent, generator: Generator, name: str) -> None:
    """Refuse a latent that cannot stand for a sample: it must be one z without noise maps."""
    check_latent(named, generator, f"latent {name!r}")
    if generator.latent_space().kind != "z" or named.noise:
        raise RewritingError(
            f"latent {name!r}: a projected photo can be a paste or context sample only on "
            f"models sampled from z (DCGAN, Progressive GAN), not on {generator.name}"
        )
    if len(named.latent) != 1:
        raise RewritingError(f"latent {name!r} holds {len(named.latent)} latents; a sample "
                             "is one")


def distinct(samples: Sequence[Sample]) -> list[Sample]:
    """Each sample once: the numbers in order, then the names in order."""
    unique = set(samples)
    return sorted(s for s in unique if isinstance(s, int)) + sorted(
        s for s in unique if isinstance(s, str))


def sample_latents(
    generator: Generator, samples: Sequence[Sample], latents: Mapping[str, NamedLatent]
) -> torch.Tensor:
    """The z [N, z_dim] of each sample: a numbered one's, or a named latent's (a photo's)."""
    numbers = [s for s in samples if isinstance(s, int)]
    numbered = dict(zip(numbers, generator.latents(numbers), strict=True))
    rows = []
    for sample in samples:
        if isinstance(sample, int):
            rows.append(numbered[sample])
            continue
        if sample not in latents:
            raise RewritingError(f"sample {sample!r} names no latent the request carries")
        check_sample_latent(latents[sample], generator, sample)
        rows.append(latents[sample].latent[0].to(generator.device))
    return torch.stack(rows) if rows else torch.zeros(0, generator.z_dim, device=generator.device)
