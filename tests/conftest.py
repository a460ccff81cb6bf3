"""Shared fixtures: an isolated statistics cache, and the embedded default model."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# The helpers the tests of every wing share (servers, bad inputs, checks) import by name.
sys.path.insert(0, str(Path(__file__).parent / "helpers"))

# Statistics computed by the tests go to a fresh folder, never the user's cache.
os.environ.setdefault("REWRITING_CACHE", tempfile.mkdtemp(prefix="rewriting-test-cache-"))


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
