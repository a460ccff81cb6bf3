"""ZeroGPU: handlers borrow a GPU sized to the model, return CPU tensors, fall back to the CPU
with a warning when the visitor gets no GPU, and a visitor's state crosses to a worker without
copying the model (checked with a stand-in for the `spaces` package)."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
import torch

from rewriting.delta import Delta, EditStack
from rewriting_app import gpu


class Elsewhere(torch.Tensor):
    """A tensor that says it is away from the CPU: `.cpu()` gives a plain copy."""

    def cpu(self, *args, **kwargs):
        return torch.Tensor(self.as_subclass(torch.Tensor)).clone()


@dataclass(frozen=True)
class Held:
    values: torch.Tensor
    name: str


@pytest.fixture
def borrowed(monkeypatch):
    """A stand-in `spaces` on a ZeroGPU Space: records each call's duration, and raises the
    error queued in `failure` (ZeroGPU's own) instead of running when one is."""
    calls, failure = [], []

    def lend(duration):
        def decorate(fn):
            def run(*args, **kwargs):
                calls.append(duration(*args, **kwargs))
                if failure:
                    raise failure.pop()
                return fn(*args, **kwargs)
            return run
        return decorate

    monkeypatch.setattr(gpu, "spaces", SimpleNamespace(GPU=lend))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    return calls, failure


def test_off_zero_gpu_a_handler_is_left_as_it_is(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def handler():
        return 1

    assert gpu.on_gpu(handler) is handler


def test_the_duration_follows_the_models_size(borrowed, dcgan):
    calls, _ = borrowed
    session = SimpleNamespace(generator=dcgan)
    assert gpu.on_gpu(lambda st, n: n + 1)(session, 1) == 2
    assert calls == [round(gpu.BASE_SECONDS + gpu.PER_MEGAPIXEL * 64 * 64 / 1e6)]
    gpu.on_gpu(lambda pending: None)(SimpleNamespace(after=session))
    gpu.on_gpu(lambda text: None)("{}")
    assert calls[1:] == [calls[0], gpu.UNKNOWN_SECONDS]


def test_results_come_back_on_the_cpu(borrowed):
    away = torch.ones(3).as_subclass(Elsewhere)
    result = gpu.on_gpu(lambda: ({"a": [away]}, Held(away, "x"), "text"))()
    assert type(result[0]["a"][0]) is torch.Tensor and type(result[1].values) is torch.Tensor
    assert result[1].name == "x" and result[2] == "text"
    kept = Held(torch.ones(2), "y")
    assert gpu.to_cpu(kept) is kept  # nothing moved: the same object


def test_no_gpu_for_the_visitor_runs_on_the_cpu_with_a_warning(borrowed, monkeypatch):
    _, failure = borrowed
    warned = []
    monkeypatch.setattr(gpu.gr, "Warning", warned.append)
    failure.append(gr.Error("You have exceeded your GPU quota", title="ZeroGPU quota exceeded"))
    assert gpu.on_gpu(lambda n: n * 2)(21) == 42
    assert warned == [gpu.ON_CPU]
    failure.append(gr.Error("something else", title="ZeroGPU worker error"))
    with pytest.raises(gr.Error):
        gpu.on_gpu(lambda n: n)(1)


def test_a_visitors_edits_cross_to_a_worker_without_the_model(dcgan):
    lam = torch.randn(1, *dcgan.parameter("main.6.weight").shape[1:])
    directions = torch.nn.functional.normalize(torch.randn(1, 256), dim=1)
    delta = Delta("main.6", "main.6.weight", 0, lam * 1e-3, directions, dcgan.name,
                  dcgan.weights_sha256)
    stack = EditStack(dcgan, [delta])
    sent = pickle.dumps(stack)
    assert len(sent) < 100_000  # the deltas, not the network's 13.6 MiB
    back = pickle.loads(sent)
    assert back.generator is dcgan and back.deltas[0] is delta  # the same objects here


@pytest.mark.slow
def test_a_pending_edit_crosses_without_its_probe_and_measures_the_same():
    from rewriting_app import session as ss

    request = (Path(__file__).parents[2] / "examples" / "eye-to-mouth.json").read_text()
    session, parsed = ss.Session.start("dcgan-digiface").loaded(json.loads(request))
    edited, _, pending = ss.execute_shown(session, parsed, ss.statistics(session), 0)
    sent = pickle.dumps((edited, pending))
    assert len(sent) < 100_000  # no network, no tensor of the probe: about 11 KB
    crossed = pickle.loads(sent)
    assert crossed[1].probe is None and crossed[1].after is crossed[0]  # one pickle, one object
    assert crossed[1].delta is pending.delta  # alive here: the same edit comes back
    measured, again = ss.measure(pending), ss.measure(crossed[1])
    assert {k: again[k] for k in ("efficacy", "generalization", "specificity")} == {
        k: measured[k] for k in ("efficacy", "generalization", "specificity")}
