"""The app's execute handler makes every tensor on an explicit device: run with the model on an
explicit `cpu` device while PyTorch's default device is `meta` (see
tests/engine/test_meta_device.py), it edits, measures and renders as usual."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rewriting import readings
from rewriting.device import CPU, select_device
from zoo.loader import load_model

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_the_apps_execute_and_sample_handlers_with_explicit_devices():
    select_device("cpu")
    assert load_model("dcgan-digiface").device == CPU
    import app

    handlers = {f.api_name: f.fn for f in app.build().fns.values() if f.api_name}
    request = (ROOT / "examples" / "eye-to-mouth.json").read_text()
    readings.clear()
    torch.set_default_device("meta")
    try:
        session, info, images = handlers["execute"](request, None)
        _, tiles, _ = handlers["sample"]("0-3", True, session)
    finally:
        torch.set_default_device(None)
        readings.clear()
    assert info["edits"] == 1 and np.isfinite(info["efficacy"]) and len(images) == 12
    assert len(tiles) == 4 and session.stack.deltas[0].lam.device == CPU
