"""Per-call views of a shared network, so that overrides and hooks never touch shared state.

A view is a fresh tree of module objects that shares every parameter and buffer tensor with the
base network. Replacing a weight in a view, or registering a hook on one of its modules, changes
only that view: many threads can render the same base network with different edits at once.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .errors import RewritingError


def _copy_module(module: nn.Module, memo: dict[int, nn.Module]) -> nn.Module:
    """A new module object whose containers (parameters, buffers, children, hooks) are copies."""
    found = memo.get(id(module))
    if found is not None:
        return found
    clone = module.__class__.__new__(module.__class__)
    state = {
        name: value.copy() if isinstance(value, (dict, set)) else value
        for name, value in module.__dict__.items()
    }
    object.__setattr__(clone, "__dict__", state)
    memo[id(module)] = clone
    for name, child in module._modules.items():
        if child is not None:
            state["_modules"][name] = _copy_module(child, memo)
    return clone


def network_view(net: nn.Module, overrides: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """A view of `net` with the tensors at the dotted paths of `overrides` replaced.

    Building one costs a dictionary copy per module; no tensor is copied.
    """
    view = _copy_module(net, {})
    for path, tensor in (overrides or {}).items():
        owner, _, name = path.rpartition(".")
        try:
            module = view.get_submodule(owner) if owner else view
        except AttributeError:
            raise RewritingError(f"the network has no module for weight {path!r}") from None
        if name in module._parameters:
            module._parameters[name] = tensor
        elif name in module._buffers:
            module._buffers[name] = tensor
        else:
            raise RewritingError(f"the network has no parameter or buffer {path!r}")
    return view
