"""What an edit solves for, prepared once from a request: the problem every solver takes."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .generator import LayerSpec
from .goal import Goal
from .request import PAPER_METHODS, EditRequest
from .solve import DEFAULT_REGULARIZATION
from .stats import KeyStats

#: The dense baseline's isotropic ridge, relative to the mean key energy: just enough to pick
#: the minimum-norm update among the many that fit the goal, as gradient descent would.
DENSE_REGULARIZATION = 1e-3


@dataclass
class EditProblem:
    """Everything an edit solves for (the ROME-style key/value step): the layer and its current
    weight W0, the paste sample's keys and module inputs, the goal, the context's directions D
    and key, and the firing threshold of that key."""

    request: EditRequest
    spec: LayerSpec
    truncation: float | None
    module: nn.Module
    weight: torch.Tensor
    keys: torch.Tensor
    inputs: tuple
    goal: Goal
    rule_directions: torch.Tensor
    context_key: torch.Tensor
    threshold: float
    stats: KeyStats
    base_weights: dict[str, torch.Tensor]
    context_goals: list[tuple[torch.Tensor, tuple, list[Goal]]] = field(default_factory=list)
    #: The share of the marked context where the context key fires (`rewrite.fires_in_context`).
    context_fires: float = 1.0

    @property
    def directions(self) -> torch.Tensor:
        """D for the request's method: the context's directions, or I for `dense`."""
        if self.request.method == "dense":
            return torch.eye(self.spec.key_channels, dtype=torch.float64,
                             device=self.rule_directions.device)
        return self.rule_directions

    @property
    def regularization(self) -> float:
        """The ridge weight of the solve: the request's, else its method's default (none for
        the authors' procedure, which has no ridge)."""
        if self.request.method in PAPER_METHODS:
            return 0.0
        if self.request.regularization is not None:
            return self.request.regularization
        return DENSE_REGULARIZATION if self.request.method == "dense" else DEFAULT_REGULARIZATION
