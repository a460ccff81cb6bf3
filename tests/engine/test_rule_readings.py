"""The rule goal's reading of the unedited model is kept in memory, shared and never modified."""

from __future__ import annotations

import pytest
import torch
from edits import EYES_TO_EYES

from rewriting import readings, rewrite
from rewriting.delta import EditStack
from rewriting.request import parse_request
from rewriting.rewrite import execute
from rewriting.stats import key_stats


@pytest.fixture
def counted_reads(monkeypatch) -> list[int]:
    """Every layer reading the cache makes, by batch size (the cache starts empty)."""
    calls: list[int] = []
    real = readings.read_layer

    def counting(generator, spec, z, *args, **kwargs):
        calls.append(len(z))
        return real(generator, spec, z, *args, **kwargs)

    readings.clear()
    monkeypatch.setattr(readings, "read_layer", counting)
    yield calls
    readings.clear()


def test_second_execute_reuses_the_reading_bit_for_bit(dcgan, counted_reads):
    request = parse_request(EYES_TO_EYES)
    stats = key_stats(dcgan, dcgan.layer("main.6"))
    first = execute(dcgan, request, stats=stats)
    assert sum(counted_reads) == rewrite.RULE_SAMPLES
    kept = [r.keys.clone() for r in next(iter(readings._kept.values()))]
    second = execute(dcgan, request, stats=stats)
    assert sum(counted_reads) == rewrite.RULE_SAMPLES, "the second Execute read the layer again"
    assert torch.equal(first.delta.lam, second.delta.lam)
    assert torch.equal(first.delta.directions, second.delta.directions)
    assert first.delta.metrics["goal_samples"] == second.delta.metrics["goal_samples"] > 4
    cached = next(iter(readings._kept.values()))
    assert all(torch.equal(a, r.keys) for a, r in zip(kept, cached, strict=True))
    readings.clear()
    fresh = execute(dcgan, request, stats=stats)
    assert sum(counted_reads) == 2 * rewrite.RULE_SAMPLES
    assert torch.equal(fresh.delta.lam, first.delta.lam)


def test_an_edit_on_top_of_others_reads_its_own_weights(dcgan, counted_reads, monkeypatch):
    request = parse_request(EYES_TO_EYES)
    stats = key_stats(dcgan, dcgan.layer("main.6"))
    first = execute(dcgan, request, stats=stats)
    stack = EditStack(dcgan, [first.delta])
    seen = []
    real = rewrite.transfer_goals
    monkeypatch.setattr(rewrite, "transfer_goals",
                        lambda *a, **k: seen.append(k["reading"]) or real(*a, **k))
    on_top = execute(dcgan, request, stack, stats=stats)
    assert seen and all(r is None for r in seen), "the base model's reading was used"
    assert sum(counted_reads) == rewrite.RULE_SAMPLES
    assert not torch.equal(on_top.delta.lam, first.delta.lam)
