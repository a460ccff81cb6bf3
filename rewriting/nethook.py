"""Context-manager hooks on one module of a network: record its inputs and output, or replace it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn


class StopForward(Exception):
    """Raised by a hook to end a forward pass once the traced layer has run."""


@dataclass
class Record:
    """What a traced module saw in the last forward pass."""

    inputs: tuple = ()
    output: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)


@contextmanager
def trace(net: nn.Module, module: str, stop: bool = False) -> Iterator[Record]:
    """Record the positional inputs and the output of `net.<module>`.

    With `stop=True` the forward pass ends right after the module (catch `StopForward`, or use
    `run_until`), so nothing past the layer is computed.
    """
    record = Record()

    def hook(_mod: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        record.inputs, record.output = inputs, output
        if stop:
            raise StopForward

    handle = net.get_submodule(module).register_forward_hook(hook)
    try:
        yield record
    finally:
        handle.remove()


@contextmanager
def replace_output(
    net: nn.Module, module: str, fn: Callable[[tuple, torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    """Replace the output of `net.<module>` by `fn(inputs, output)` during forward passes."""
    handle = net.get_submodule(module).register_forward_hook(
        lambda _mod, inputs, output: fn(inputs, output)
    )
    try:
        yield
    finally:
        handle.remove()


def run_until(forward: Callable[[], object], net: nn.Module, module: str) -> Record:
    """Run `forward()` only as far as `net.<module>` and return what that module saw."""
    with trace(net, module, stop=True) as record:
        try:
            forward()
        except StopForward:
            pass
    return record
