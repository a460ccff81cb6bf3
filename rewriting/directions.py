"""Directions D of a rank-r update from the user's context selections (paper, section 1).

Keys under the context masks are whitened with C^{-1/2}; the top r right singular vectors are
mapped back through C^{-1/2}, orthonormalised, and signed to agree with the mean context key.
For a single key and r = 1 this is d proportional to C^{-1} k*. A partially covered cell
scales its whitened key by sqrt(w) (its weight in the key scatter is w) or, as the authors' code
does, by w.
"""

from __future__ import annotations

import torch

from .errors import RewritingError

#: Eigenvalues of C below this fraction of the largest are floored (dead channels).
EIGEN_FLOOR = 1e-6


def inverse_sqrt(second_moment: torch.Tensor) -> torch.Tensor:
    """C^{-1/2} (symmetric), with tiny eigenvalues floored so dead channels do not blow it up."""
    eigvals, eigvecs = torch.linalg.eigh(second_moment.double())
    eigvals = eigvals.clamp_min(EIGEN_FLOOR * float(eigvals.max()))
    return (eigvecs * eigvals.rsqrt()) @ eigvecs.T


def context_directions(
    second_moment: torch.Tensor,
    keys: torch.Tensor,
    weights: torch.Tensor,
    rank: int,
    linear_weights: bool = False,
    whiten: torch.Tensor | None = None,
) -> torch.Tensor:
    """D [rank, C_in] with orthonormal rows, from context keys [n, C_in] weighted by `weights`
    (whitened keys scaled by sqrt(w), or by w when `linear_weights`); `whiten` is C^{-1/2}
    when already known."""
    if keys.shape[0] < rank:
        raise RewritingError(
            f"rank {rank} needs at least {rank} context locations; the context covers "
            f"{keys.shape[0]}"
        )
    if rank > keys.shape[1]:
        raise RewritingError(f"rank {rank} exceeds the layer's {keys.shape[1]} key channels")
    keys, weights = keys.double(), weights.double()
    whiten = inverse_sqrt(second_moment) if whiten is None else whiten
    scale = weights if linear_weights else weights.sqrt()
    whitened = (keys @ whiten) * scale[:, None]
    _, _, right = torch.linalg.svd(whitened, full_matrices=False)
    directions = right[:rank] @ whiten
    q, _ = torch.linalg.qr(directions.T)
    directions = q.T
    mean_key = (keys * weights[:, None]).sum(0) / weights.sum()
    signs = torch.sign(directions @ mean_key)
    signs[signs == 0] = 1
    return directions * signs[:, None]


def context_key(directions: torch.Tensor, mean_key: torch.Tensor) -> torch.Tensor:
    """The single key direction D^T u, u the mean context key's unit coordinates in span(D).

    `keys @ context_key(...)` measures how strongly keys fire for the rule's context; for
    rank one it is d^T k.
    """
    along = directions.double() @ mean_key.double()
    return directions.double().T @ (along / along.norm().clamp_min(1e-12))


def directions_cosine(first: torch.Tensor, second: torch.Tensor) -> float:
    """How close two D [r, C_in] with orthonormal rows are: the mean cosine of the principal
    angles between their row spaces (|d1 . d2| for rank one; 1 when they span the same)."""
    if first.shape != second.shape:
        raise ValueError(f"directions of shapes {list(first.shape)} and {list(second.shape)}")
    cosines = torch.linalg.svdvals(first.double() @ second.double().T)
    return float(cosines.clamp(max=1.0).mean())
