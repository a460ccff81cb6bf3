"""The app's warm-up as it starts: the statistics of the default model and of the examples'
layers computed once into the digest-checked disk cache (a visitor who clicks meanwhile waits
on the same computation), loaded from there on the next start, one line per layer on stderr,
a failure one line too, and `WARM_DONE` last; through a running app, with no token logged."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch
from app_server import app_log, running_app
from safetensors import safe_open

from rewriting.stats import KeyStats
from rewriting_app import session as ss
from rewriting_app import warm
from rewriting_app.settings import EMBEDDED_MODEL
from rewriting_lab import first_execute

TOKEN = "hf_warmupMustNeverLogThisToken0123456789"


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """An empty statistics cache, and no statistics in memory."""
    monkeypatch.setenv("REWRITING_CACHE", str(tmp_path))
    monkeypatch.setattr(ss, "_stats", {})
    monkeypatch.setattr(ss, "_computing", {})
    return tmp_path / "stats"


def test_the_lab_waits_for_the_line_the_warm_up_ends_with():
    assert first_execute.WARM_DONE == warm.WARM_DONE


def test_statistics_are_computed_once_then_loaded_from_the_disk_cache(fresh_cache, capsys,
                                                                       monkeypatch, dcgan):
    warm.warm_layers(EMBEDDED_MODEL)
    said = capsys.readouterr().err.splitlines()
    # The default model's default layer is the examples' layer too: one line, one computation.
    assert len(said) == 1 and said[0].startswith(
        "statistics for dcgan-digiface main.6: computed in "), said
    [cached] = fresh_cache.glob("dcgan-digiface-main.6-*.safetensors")
    with safe_open(cached, "pt") as stored:
        assert len(stored.metadata()["sha256"]) == 64
    monkeypatch.setattr(ss, "_stats", {})  # a new server process: nothing in memory
    warm.warm_layers(EMBEDDED_MODEL)
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 1 and said[0].startswith(
        "statistics for dcgan-digiface main.6: loaded from cache in "), said


def test_a_visitor_who_clicks_meanwhile_waits_on_the_same_computation(fresh_cache, monkeypatch,
                                                                      capsys, dcgan):
    computed = []

    def slow_stats(generator, spec, truncation, progress=None):
        computed.append(spec.name)
        time.sleep(0.5)
        progress(1, 1)
        return KeyStats(torch.eye(spec.key_channels, dtype=torch.float64),
                        torch.zeros(4, spec.key_channels), 4, {})

    monkeypatch.setattr(ss, "key_stats", slow_stats)
    session = ss.Session.start(EMBEDDED_MODEL)
    warming = threading.Thread(target=warm.warm_statistics, args=(session,))
    warming.start()
    while not computed:
        time.sleep(0.01)
    visitors = ss.statistics(session)
    warming.join()
    assert computed == ["main.6"] and ss.statistics(session) is visitors
    assert "main.6: computed in" in capsys.readouterr().err


def test_a_failure_is_one_line_and_the_warm_up_goes_on(monkeypatch, capsys, dcgan):
    done = []
    monkeypatch.setattr(warm, "warm_statistics", lambda session: done.append(session.layer))
    monkeypatch.setattr(warm, "example_thumbnail", lambda path: done.append(path.name))
    monkeypatch.setattr(warm, "warm_edit", lambda session, request: done.append("edit"))
    monkeypatch.setattr(warm, "ready", threading.Event())
    warm.warm_up("no-such-model")
    said = capsys.readouterr().err.splitlines()
    assert said[0].startswith(
        "warm-up: the default model's statistics failed: unknown model 'no-such-model'")
    assert said[-1].startswith(f"{warm.WARM_DONE} in ") and len(said) == 2, said
    # The examples share one layer: its statistics once; then each example is executed once
    # (its settings search is kept for the visitors' first click).
    assert done == ["main.6", "glasses-onto-eyes.json", "open-mouth.json", "eye-to-mouth.json",
                    "edit", "edit", "edit"]
    assert warm.ready.is_set()


def test_on_zero_gpu_nothing_is_warmed(monkeypatch, capsys):
    monkeypatch.setattr(warm, "zero_gpu", lambda: True)
    monkeypatch.setattr(warm, "warm_layers", lambda model: pytest.fail("warmed on ZeroGPU"))
    monkeypatch.setattr(warm, "ready", threading.Event())
    warm.warm_up(EMBEDDED_MODEL)
    said = capsys.readouterr().err
    assert "warm-up skipped on ZeroGPU" in said and warm.WARM_DONE in said
    assert warm.ready.is_set()


@pytest.mark.slow
def test_a_started_app_warms_up_in_the_background_and_logs_no_token(tmp_path):
    log = tmp_path / "app.log"
    with running_app(tmp_path, env={"HF_TOKEN": TOKEN}):
        first_execute.warmed_up(log)
    text = log.read_text()
    assert "statistics for dcgan-digiface main.6: computed in " in text, app_log(tmp_path)
    assert "an edit at dcgan-digiface main.6 warmed in " in text, app_log(tmp_path)
    assert "warm-up:" not in text, app_log(tmp_path)  # no step failed
    assert TOKEN not in text
    assert list((tmp_path / "cache" / "stats").glob("dcgan-digiface-main.6-*.safetensors"))
