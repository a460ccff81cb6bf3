"""Visitors never see each other's edits: rendering, tracing and previews from many threads at
once, each with its own edit stack, give exactly what that stack gives alone, and the shared
network is bit-identical afterwards (no weight swapped in, no hook left behind)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import torch
from edits import random_delta

from rewriting.delta import EditStack
from rewriting.features import read_layer
from rewriting.nethook import replace_output
from rewriting.render import render

NUMBERS = list(range(1000, 1006))
ROUNDS = 12


def snapshot(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict(keep_vars=True).items()}


def hook_count(net: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules())


def run_threads(jobs: list[Callable[[], None]]) -> list[BaseException]:
    """Start every job at once; the exceptions they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def guarded(job: Callable[[], None]) -> None:
        barrier.wait()
        try:
            job()
        except BaseException as err:  # noqa: BLE001 - reported by the test
            errors.append(err)

    threads = [threading.Thread(target=guarded, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return errors


@pytest.mark.slow
def test_concurrent_renders_with_different_stacks_stay_apart(dcgan):
    layers = list(dcgan.layers)
    stacks = [
        EditStack(dcgan),
        EditStack(dcgan, [random_delta(dcgan, dcgan.default_layer, 1)]),
        EditStack(dcgan, [random_delta(dcgan, dcgan.default_layer, 2)]),
        EditStack(dcgan, [random_delta(dcgan, layers[0], 3), random_delta(dcgan, layers[-1], 4)]),
    ]
    spec = dcgan.layer(dcgan.default_layer)
    before = snapshot(dcgan.net)
    alone = [render(dcgan, NUMBERS, weights=stack.weights()) for stack in stacks]
    keys_alone = [read_layer(dcgan, spec, dcgan.latents(NUMBERS), None, s.weights()).keys
                  for s in stacks]
    for i in range(1, len(alone)):
        assert not torch.equal(alone[i], alone[0]), "each edit must change the images"

    seen: dict[str, list[bool]] = {"render": [], "keys": [], "hooked": []}

    def renderer(i: int) -> Callable[[], None]:
        def job() -> None:
            for _ in range(ROUNDS):
                images = render(dcgan, NUMBERS, weights=stacks[i].weights())
                seen["render"].append(torch.equal(images, alone[i]))
        return job

    def tracer(i: int) -> Callable[[], None]:
        def job() -> None:
            for _ in range(ROUNDS):
                keys = read_layer(dcgan, spec, dcgan.latents(NUMBERS), None, stacks[i].weights())
                seen["keys"].append(torch.equal(keys.keys, keys_alone[i]))
        return job

    def hooked() -> None:
        # A preview-style hook that blanks the layer: only its own view may see it.
        for _ in range(ROUNDS):
            net = dcgan.view(stacks[1].weights())
            with replace_output(net, spec.module, lambda _i, out: torch.zeros_like(out)):
                blank = render(dcgan, NUMBERS, net=net)
            seen["hooked"].append(not torch.equal(blank, alone[1]))

    jobs = [renderer(i) for i in range(len(stacks))] * 2 + [tracer(0), tracer(2), hooked]
    errors = run_threads(jobs)
    assert not errors, errors
    assert len(seen["render"]) == 8 * ROUNDS and all(seen["render"])
    assert len(seen["keys"]) == 2 * ROUNDS and all(seen["keys"])
    assert len(seen["hooked"]) == ROUNDS and all(seen["hooked"])
    after = snapshot(dcgan.net)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(type(p) is torch.nn.Parameter for p in dcgan.net.parameters())
    assert hook_count(dcgan.net) == 0


def test_a_view_shares_tensors_and_keeps_overrides_private(dcgan):
    spec = dcgan.layer(dcgan.default_layer)
    base = dcgan.parameter(spec.weight)
    edited = base + 1.0
    view = dcgan.view({spec.weight: edited})
    owner, _, name = spec.weight.rpartition(".")
    assert getattr(view.get_submodule(owner), name) is edited
    assert dcgan.parameter(spec.weight) is base
    # Every other tensor is the very same object: a view copies no weights.
    shared = dict(view.named_parameters())
    for name, tensor in dcgan.net.named_parameters():
        if name != spec.weight:
            assert shared[name] is tensor
    view.get_submodule(spec.module).register_forward_hook(lambda *_: None)
    assert hook_count(dcgan.net) == 0

