"""The model the page opens on: REWRITING_DEFAULT_MODEL, else the paper's StyleGAN2 where a GPU
computes and the Hub answers, else the embedded DCGAN."""

from __future__ import annotations

import pytest
import torch

from rewriting.errors import RewritingError
from rewriting_app import opening


@pytest.mark.parametrize(("device", "hub", "opened"), [
    ("cpu", True, "dcgan-digiface"), ("cuda", False, "dcgan-digiface"),
    ("cuda", True, opening.GPU_MODEL),
])
def test_a_gpu_and_the_hub_open_on_stylegan2(monkeypatch, device, hub, opened):
    monkeypatch.delenv(opening.DEFAULT_ENV, raising=False)
    monkeypatch.setattr(opening, "current_device", lambda: torch.device(device))
    monkeypatch.setattr(opening, "hub_reachable", lambda: hub)
    assert opening.opening_model("dcgan-digiface") == opened


def test_the_environment_overrides(monkeypatch):
    monkeypatch.setattr(opening, "hub_reachable", lambda: pytest.fail("the Hub was asked"))
    monkeypatch.setenv(opening.DEFAULT_ENV, "stylegan2-faces")
    assert opening.opening_model("dcgan-digiface") == "stylegan2-faces"
    monkeypatch.setenv(opening.DEFAULT_ENV, "no-such-model")
    with pytest.raises(RewritingError, match=opening.DEFAULT_ENV):
        opening.opening_model("dcgan-digiface")


def test_offline_the_page_opens_on_the_embedded_model():
    import app

    assert app.DEFAULT_MODEL == "dcgan-digiface"
