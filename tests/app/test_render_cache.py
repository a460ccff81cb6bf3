"""Rendered samples are kept per edit stack: nothing is rendered twice for the same edits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from edits import EYES_TO_EYES

from rewriting.lru import BytesLRU
from rewriting.render import render
from rewriting.request import parse_request
from rewriting_app import renders
from rewriting_app import session as ss


@pytest.fixture
def rendered_numbers(monkeypatch) -> list[list[int]]:
    """The sample numbers of every render the session module asks for (the cache starts empty)."""
    calls: list[list[int]] = []

    def counting(generator, numbers, *args, **kwargs):
        calls.append(list(numbers))
        return render(generator, numbers, *args, **kwargs)

    renders.clear()
    monkeypatch.setattr(ss, "render", counting)
    yield calls
    renders.clear()


def test_samples_are_rendered_once_per_stack_and_handed_out_as_copies(rendered_numbers):
    session = ss.Session.start("dcgan-digiface")
    first = ss.samples(session, [3, 1, 2])
    assert rendered_numbers == [[1, 2, 3]]
    first[:] = 0  # a caller's copy: the kept images stay as rendered
    again = ss.samples(session, [2, 5, 3])
    assert rendered_numbers == [[1, 2, 3], [5]]
    direct = render(session.generator, [2, 5, 3], session.truncation).numpy()
    assert np.array_equal(again, direct)
    unedited = ss.samples(session, [1, 2], edited=False)  # no edits: the same images
    assert np.array_equal(unedited, render(session.generator, [1, 2]).numpy())
    assert len(rendered_numbers) == 2


def test_an_executed_edit_is_measured_and_shown_without_rendering_again(dcgan, rendered_numbers):
    session = ss.Session.start("dcgan-digiface")
    stats = ss.statistics(session)
    done, metrics, shown = ss.run_edit_shown(session, parse_request(EYES_TO_EYES), stats, 6)
    # The measure's own passes (before and after) are kept: nothing else was rendered.
    assert rendered_numbers == []
    picture = np.asarray(ss.comparison(done, shown))
    assert rendered_numbers == [], "the before/after picture rendered its samples again"
    after = render(dcgan, list(shown.numbers), session.truncation, done.weights())
    assert np.array_equal(ss.samples(done, list(shown.numbers)), after.numpy())
    before = ss.samples(session, list(shown.numbers))
    assert np.abs(after.numpy().astype(int) - before).mean() > 0.5, "the edit changed nothing"
    assert metrics["efficacy"] > 0 and picture.shape[0] > 0
    other = done.with_strength(0.5)
    assert renders.stack_digest(other.stack) != renders.stack_digest(done.stack)
    assert not np.array_equal(ss.samples(other, list(shown.numbers)), after.numpy())
    assert rendered_numbers[-1] == sorted(shown.numbers)
    assert torch.equal(torch.from_numpy(ss.samples(done, [0], edited=False)),
                       render(dcgan, [0], session.truncation))


def test_kept_values_are_bounded_by_bytes_least_recently_used_first():
    kept = BytesLRU(10, len)
    kept.put("a", "xxxx")
    kept.put("b", "xxxx")
    assert kept.get("a") == "xxxx"  # now the most recently used
    kept.put("c", "xxxx")  # 12 bytes: "b" goes
    assert kept.get("b") is None and kept.get("a") == "xxxx" and kept.get("c") == "xxxx"
    kept.put("a", "yy")  # one is kept already: unchanged
    assert kept.get("a") == "xxxx"
    kept.put("d", "x" * 11)  # larger than the whole store: not kept, nothing dropped
    assert kept.get("d") is None and len(kept.values()) == 2
