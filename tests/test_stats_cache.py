"""The key-statistics cache: reused only when every identifying key matches, else recomputed."""

from __future__ import annotations

import torch

import rewriting.stats as stats_module
from rewriting.stats import cache_path, key_stats, stats_identity


def _counting(monkeypatch):
    calls = []
    real = stats_module.compute_key_stats

    def counted(*args, **kwargs):
        calls.append(args[1].name)
        return real(*args, **kwargs)

    monkeypatch.setattr(stats_module, "compute_key_stats", counted)
    return calls


def test_cache_is_reused_only_when_all_keys_match(dcgan, tmp_path, monkeypatch):
    calls = _counting(monkeypatch)
    spec = dcgan.layer("main.6")
    progress = []
    first = key_stats(dcgan, spec, samples=64, cache_dir=tmp_path,
                      progress=lambda done, total: progress.append((done, total)))
    assert calls == ["main.6"] and progress[-1] == (64, 64)
    assert first.second_moment.dtype == torch.float64
    assert first.count == 64 * 8 * 8
    again = key_stats(dcgan, spec, samples=64, cache_dir=tmp_path)
    assert calls == ["main.6"]  # reused
    assert torch.equal(again.second_moment, first.second_moment)
    assert torch.equal(again.key_sample, first.key_sample)

    key_stats(dcgan, spec, samples=32, cache_dir=tmp_path)  # another sample count
    key_stats(dcgan, spec, samples=64, seed=5, cache_dir=tmp_path)  # another seed
    key_stats(dcgan, dcgan.layer("main.3"), samples=64, cache_dir=tmp_path)  # another layer
    assert calls == ["main.6", "main.6", "main.6", "main.3"]


def test_cache_with_other_weights_or_corruption_is_recomputed(dcgan, tmp_path, monkeypatch):
    calls = _counting(monkeypatch)
    spec = dcgan.layer("main.6")
    first = key_stats(dcgan, spec, samples=32, cache_dir=tmp_path)
    path = cache_path(tmp_path, stats_identity(dcgan, spec, None, 32, stats_module.STATS_SEED))
    assert path.is_file() and not list(tmp_path.glob("*.tmp"))

    # A file whose metadata names other weights is not reused, even under the same name.
    other = stats_identity(dcgan, spec, None, 32, stats_module.STATS_SEED)
    other["weights_sha256"] = "f" * 64
    stats_module.save_atomic(path, stats_module.KeyStats(
        first.second_moment, first.key_sample, first.count, other))
    key_stats(dcgan, spec, samples=32, cache_dir=tmp_path)
    assert calls == ["main.6", "main.6"]
    monkeypatch.undo()
    calls = _counting(monkeypatch)

    path.write_bytes(path.read_bytes()[:100])  # truncated
    recomputed = key_stats(dcgan, spec, samples=32, cache_dir=tmp_path)
    assert calls == ["main.6"]
    assert torch.allclose(recomputed.second_moment, first.second_moment)
    assert key_stats(dcgan, spec, samples=32, cache_dir=tmp_path) is not None
    assert calls == ["main.6"]  # the rewritten file is good again
