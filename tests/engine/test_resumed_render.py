"""Renders that change only the edited layer resume there: the same images and layer values, to
the bit, as renders from the latents, with the kept passes untouched; goal images run only what
follows the layer; an edit's linear algebra runs on one thread, its layer readings on the
caller's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from edits import EYES_TO_EYES

from rewriting import rewrite, solve
from rewriting.features import read_layer
from rewriting.render import midway, render_resumed, render_traced
from rewriting.request import parse_request
from rewriting.rewrite import execute
from rewriting.transfer import SampleGoals, goal_images
from zoo.loader import build_from_file

#: 23 samples: two full render batches and a padded one.
NUMBERS = [3, 5, 8, *range(20, 40)]
TINY_PROGGAN = Path(__file__).parents[1] / "data" / "proggan_tiny.pth"


@pytest.fixture(params=["dcgan", "proggan"])
def family(request, dcgan):
    """A generator with a `tail` and the layer to resume at: the real DCGAN's `main.6`, and a
    tiny Progressive GAN's `layer5` (a block that upsamples, then convolves)."""
    if request.param == "dcgan":
        return dcgan, "main.6"
    return build_from_file(TINY_PROGGAN, "proggan"), "layer5"


def nudged(generator, name: str) -> dict[str, torch.Tensor]:
    weight = generator.parameter(name)
    noise = torch.randn(weight.shape, generator=torch.Generator().manual_seed(0))
    return {name: weight + 0.02 * noise}


def refuse_latents(*_args, **_kwargs):
    raise AssertionError("rendered from the latents")


def test_a_render_resumed_at_the_edited_layer_equals_one_from_the_latents(family, monkeypatch):
    generator, layer = family
    spec = generator.layer(layer)
    z = generator.latents(NUMBERS)
    start = midway(generator, z, spec.module)
    kept = [(tuple(t.clone() for t in inputs), output.clone()) for inputs, output, _ in
            start.batches]
    for weights in ({}, nudged(generator, spec.weight)):
        images, values = render_traced(generator, z, spec.module, None, weights)
        with monkeypatch.context() as patch:
            patch.setattr(generator, "synthesize", refuse_latents)
            resumed_images, resumed_values = render_resumed(generator, start, weights)
        assert torch.equal(resumed_images, images) and torch.equal(resumed_values, values)
    assert len(start.batches) == 2 and start.batches[-1][2] == len(NUMBERS) - 16
    for (inputs, output, _), (kept_inputs, kept_output) in zip(start.batches, kept, strict=True):
        assert torch.equal(output, kept_output)
        assert all(torch.equal(a, b) for a, b in zip(inputs, kept_inputs, strict=True))


def test_weights_changed_before_the_layer_render_from_the_latents(dcgan):
    spec = dcgan.layer("main.6")
    z = dcgan.latents(NUMBERS[:5])
    start = midway(dcgan, z, spec.module)
    upstream = nudged(dcgan, "main.3.weight")
    images, values = render_resumed(dcgan, start, upstream)
    expected = render_traced(dcgan, z, spec.module, None, upstream)
    assert torch.equal(images, expected[0]) and torch.equal(values, expected[1])
    assert not torch.equal(values, render_resumed(dcgan, start, {})[1])


def test_a_family_without_a_tail_renders_from_the_latents(dcgan, monkeypatch):
    monkeypatch.setattr(dcgan, "tail", lambda net, module: None)
    spec = dcgan.layer("main.6")
    z = dcgan.latents(NUMBERS[:5])
    start = midway(dcgan, z, spec.module)
    assert start.batches == ()
    weights = nudged(dcgan, spec.weight)
    images, values = render_resumed(dcgan, start, weights)
    expected = render_traced(dcgan, z, spec.module, None, weights)
    assert torch.equal(images, expected[0]) and torch.equal(values, expected[1])


def test_goal_images_from_the_tail_equal_those_of_the_swapped_layer(family, monkeypatch):
    generator, layer = family
    spec = generator.layer(layer)
    numbers = NUMBERS[:18]
    values = read_layer(generator, spec, generator.latents(numbers), None).values
    targets = values.flip(0) + 0.1  # someone else's values, shifted: unlike any render
    goals = SampleGoals(numbers, targets, [(0, 0, 4, 4)] * len(numbers), list(range(18)))
    with monkeypatch.context() as patch:
        patch.setattr(generator, "synthesize", refuse_latents)
        from_tail = goal_images(generator, spec, goals, None, {})
    monkeypatch.setattr(generator, "tail", lambda net, module: None)
    swapped = goal_images(generator, spec, goals, None, {})
    assert from_tail.shape == (18, *generator.image_size, 3) and torch.equal(from_tail, swapped)


def test_an_edit_solves_on_one_thread_and_reads_on_the_callers(dcgan, monkeypatch):
    seen: dict[str, set[int]] = {"solve": set(), "read": set()}

    def recording(name, real):
        def call(*args, **kwargs):
            seen[name].add(torch.get_num_threads())
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(solve, "_closed_form", recording("solve", solve._closed_form))
    monkeypatch.setattr(rewrite, "read_layer", recording("read", rewrite.read_layer))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        execute(dcgan, parse_request(EYES_TO_EYES))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert seen == {"solve": {1}, "read": {2}}
