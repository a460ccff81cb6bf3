"""Shared fixtures: an isolated statistics cache, the embedded default model, the write guard
of the hostile-input tests, and the fast tier's sample of their cases."""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

# The helpers the tests of every wing share (servers, bad inputs, checks) import by name.
sys.path.insert(0, str(Path(__file__).parent / "helpers"))

# Statistics computed by the tests go to a fresh folder, never the user's cache.
os.environ.setdefault("REWRITING_CACHE", tempfile.mkdtemp(prefix="rewriting-test-cache-"))
# The reference images are the CPU's: the suite computes there on a machine with a GPU too
# (scripts/gpu_check.sh checks the GPU against the CPU).
os.environ.setdefault("REWRITING_DEVICE", "cpu")


#: In the fast tier (`-m "not slow"`), each parametrized hostile-input test runs its first
#: case, so every table is tried while working; the full suite (CI) runs every case.
FAST_HOSTILE_CASES = 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark all but the first FAST_HOSTILE_CASES cases of each hostile-input test slow."""
    seen: Counter = Counter()
    for item in items:
        if item.path.name.startswith("test_hostile_") and hasattr(item, "callspec"):
            seen[item.path, item.originalname] += 1
            if seen[item.path, item.originalname] > FAST_HOSTILE_CASES:
                item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def dcgan():
    """The real pretrained DCGAN of gan-face-generate (loaded once, shared read-only)."""
    from zoo.loader import load_model

    return load_model("dcgan-digiface")


@pytest.fixture(autouse=True)
def writes_stay_in_their_places(request):
    """In the hostile-input tests, nothing is written outside the temp folder and the caches,
    whatever the input (the audit hook of write_guard watches every test of those files)."""
    if not request.node.path.name.startswith("test_hostile_"):
        yield
        return
    from huggingface_hub import constants
    from memory import PEAK_RESET
    from write_guard import outside, recording

    from rewriting.stats import default_cache_dir

    with recording() as written:
        yield
        allowed = [tempfile.gettempdir(), default_cache_dir(), constants.HF_HOME,
                   constants.HF_HUB_CACHE, constants.HF_ASSETS_CACHE, PEAK_RESET, os.devnull]
        escaped = outside(written, allowed)
    assert escaped == [], f"written outside the temp folder and the caches: {escaped[:5]}"
