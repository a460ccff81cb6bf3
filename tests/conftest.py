"""Shared fixtures: an isolated statistics cache, and the embedded default model."""

from __future__ import annotations

import os
import tempfile

import pytest

# Statistics computed by the tests go to a fresh folder, never the user's cache.
os.environ.setdefault("REWRITING_CACHE", tempfile.mkdtemp(prefix="rewriting-test-cache-"))


@pytest.fixture(scope="session")
def dcgan():
    """The real pretrained DCGAN of gan-face-generate (loaded once, shared read-only)."""
    from zoo.registry import load_model

    return load_model("dcgan-digiface")
