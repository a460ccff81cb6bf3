"""The key-statistics cache: reused only when every identifying key matches, else recomputed."""

from __future__ import annotations

import json

import torch
from safetensors import safe_open
from safetensors.torch import save_file

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


def contents(path) -> tuple[dict, dict]:
    """The metadata and the tensors' bytes of a safetensors file (its header order varies)."""
    with safe_open(path, "pt") as handle:
        data = {k: handle.get_tensor(k).numpy().tobytes() for k in handle.keys()}
        return handle.metadata(), data


def test_a_cache_failing_its_checksum_or_soundness_is_recomputed_and_replaced(
    dcgan, tmp_path, monkeypatch
):
    spec = dcgan.layer("main.6")
    good = key_stats(dcgan, spec, samples=32, cache_dir=tmp_path)
    meta = stats_identity(dcgan, spec, None, 32, stats_module.STATS_SEED)
    path = cache_path(tmp_path, meta)
    original = path.read_bytes()
    header = 8 + int.from_bytes(original[:8], "little")
    assert json.loads(original[8:header])["__metadata__"]["sha256"]
    contents_before = contents(path)

    flipped = bytearray(original)
    flipped[header + 100] ^= 0x40  # one bit of the second moment's data
    moment, sample = good.second_moment, good.key_sample
    channels = spec.key_channels

    def written(moment=moment, sample=sample, count=good.count, sha=True) -> bytes:
        """A cache file with these contents and (unless `sha` is False) a valid checksum."""
        stats_module.save_atomic(path, stats_module.KeyStats(moment, sample, count, meta))
        if not sha:
            tensors = {"second_moment": moment, "key_sample": sample}
            save_file(tensors, path, metadata={**meta, "count": str(count)})
        return path.read_bytes()

    bad = {
        "flipped bit": bytes(flipped),
        "no checksum": written(sha=False),
        "NaN": written(moment=moment.clone().fill_diagonal_(float("nan"))),
        "Inf in the key sample": written(sample=sample.clone().fill_(float("inf"))),
        "zeros": written(moment=torch.zeros_like(moment)),
        "wrong shape": written(moment=torch.eye(channels + 1, dtype=torch.float64)),
        "float32": written(moment=moment.float()),
        "zero count": written(count=0),
        "count not a multiple": written(count=good.count + 1),
        "empty key sample": written(sample=sample[:0]),
    }
    for what, data in bad.items():
        path.write_bytes(data)
        assert stats_module.load_cached(path, meta, channels) is None, what
    path.write_bytes(original)
    assert stats_module.load_cached(path, meta, channels) is not None

    calls = _counting(monkeypatch)
    for what in ("flipped bit", "NaN"):
        path.write_bytes(bad[what])
        again = key_stats(dcgan, spec, samples=32, cache_dir=tmp_path)
        assert torch.equal(again.second_moment, good.second_moment), what
        assert contents(path) == contents_before, what  # replaced by a sound file
    assert len(calls) == 2
    key_stats(dcgan, spec, samples=32, cache_dir=tmp_path)
    assert len(calls) == 2  # the sound file is used again


def test_whitening_is_computed_once_with_the_statistics(dcgan, monkeypatch):
    """C^{-1/2} is made when the statistics are loaded; edits on them never factorise C again."""
    from pathlib import Path

    import rewriting.directions as directions
    from rewriting.request import read_request
    from rewriting.rewrite import execute

    stats = key_stats(dcgan, dcgan.layer("main.6"), None)
    assert torch.allclose(stats.whitening, directions.inverse_sqrt(stats.second_moment))

    def refactorised(_moment):
        raise AssertionError("C was factorised again for an edit")

    monkeypatch.setattr(directions, "inverse_sqrt", refactorised)
    request = read_request(Path(__file__).parents[2] / "examples" / "eye-to-mouth.json")
    first = execute(dcgan, request, stats=stats).delta
    again = execute(dcgan, request, stats=stats).delta
    assert torch.equal(first.lam, again.lam) and torch.equal(first.directions, again.directions)
