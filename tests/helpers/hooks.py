"""Test helpers: what several modules saw in one forward pass, and a max-abs-error shorthand."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

import torch

from rewriting.nethook import trace


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def capture(net: torch.nn.Module, modules: list[str], run: Callable[[], object]) -> dict:
    """Run `run()` and return each module's (positional inputs, output)."""
    with ExitStack() as stack:
        records = {m: stack.enter_context(trace(net, m)) for m in modules}
        run()
    return {m: (r.inputs, r.output) for m, r in records.items()}
