"""The paper's saved edit files load as the authors' code reads them: one synthetic file of each
shape found in their notebooks/masks tree (tests/data/paper_edits, masks drawn for this test)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rewriting.errors import RewritingError
from rewriting.request import DEFAULT_ERASE_CHANNELS, parse_request
from rewriting.rewrite import execute, prepare_problem

ROOT = Path(__file__).parents[2]
DATA = Path(__file__).parents[1] / "data" / "paper_edits"
EDITS = ["object_paste_1024.json", "object_paste_query.json", "object_paste_key.json",
         "mixed_resolution.json", "erase_paste_key.json"]


def load(name: str):
    return parse_request(json.loads((DATA / name).read_text()), "dcgan-digiface", "main.6")


def test_each_shape_parses_as_the_authors_code_reads_it():
    plain, query, keyed, mixed, erase = (load(name) for name in EDITS)
    for request in (plain, query, keyed, mixed):
        assert request.copy is not None and request.copy.paper and request.erase is None
    # No "key": the context is the paste selection (an empty context means exactly that).
    assert plain.context == () and query.context == ()
    assert [s.sample for s in keyed.context] == [7, 12] == [s.sample for s in mixed.context]
    # No "object": an erase of the authors' 30 channels, at the paste, learnt from the keys.
    assert erase.copy is None and erase.erase == DEFAULT_ERASE_CHANNELS == 30
    assert erase.paste.sample == 3 and [s.sample for s in erase.context] == [3, 5]


@pytest.mark.parametrize("name, message", [
    ("context_only.json", "no 'paste'"),
    ("object_key_no_paste.json", "no 'paste'"),
    ("interventions.json", '"paste"'),
])
def test_files_the_authors_code_cannot_apply_are_refused_clearly(name, message):
    with pytest.raises(RewritingError, match=message) as error:
        load(name)
    assert "\n" not in str(error.value)


def test_every_shape_prepares_on_the_dcgan_with_either_grid(dcgan):
    for name in EDITS:
        request = load(name)
        for grid in ("coverage", "paper"):
            problem = prepare_problem(dcgan, replace(request, grid=grid))
            assert problem.goal.region().any() and problem.rule_directions.shape == (1, 256)


def test_a_missing_key_means_the_paste_selection(dcgan):
    request = load("object_paste_query.json")
    explicit = replace(request, context=(request.paste,))
    ours, theirs = execute(dcgan, request).delta, execute(dcgan, explicit).delta
    assert torch.equal(ours.directions, theirs.directions) and torch.equal(ours.lam, theirs.lam)


def test_grid_option_round_trips_and_is_checked():
    data = json.loads((ROOT / "examples" / "eye-to-mouth.json").read_text())
    assert parse_request(data).grid == "coverage"
    assert parse_request({**data, "method": "paper"}).grid == "paper"
    request = parse_request({**data, "grid": "paper"})
    assert parse_request(request.to_json()) == request
    with pytest.raises(RewritingError, match="grid must be one of coverage, paper"):
        parse_request({**data, "grid": "nearest"})


def test_goal_option_round_trips_and_is_checked():
    data = json.loads((ROOT / "examples" / "eye-to-mouth.json").read_text())
    assert parse_request(data).goal == "rule"
    for goal in ("paste", "context"):
        request = parse_request({**data, "goal": goal})
        assert request.goal == goal and parse_request(request.to_json()) == request
    with pytest.raises(RewritingError, match="goal must be one of paste, context, rule"):
        parse_request({**data, "goal": "everywhere"})


@pytest.mark.parametrize("name", ["mixed_resolution.json", "erase_paste_key.json"])
@pytest.mark.slow
def test_cli_edits_with_a_saved_paper_file(tmp_path, name):
    done = subprocess.run(
        [sys.executable, "-m", "rewriting", "edit", str(DATA / name), "--out", "out",
         "--model", "dcgan-digiface", "--layer", "main.6"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["residual"] < 1 and metrics["change_inside"] > metrics["change_outside"]


def test_the_paper_format_examples_name_their_model_and_layer():
    """examples/evaluation/paper-*.json: the paper's format plus `model` and `layer`, which
    the authors' code ignores; they load without --model or --layer."""
    paths = sorted((ROOT / "examples" / "evaluation").glob("paper-*.json"))
    assert len(paths) == 3
    for path in paths:
        data = json.loads(path.read_text())
        assert {"paste", "key"} <= set(data) and isinstance(data["paste"], list)
        request = parse_request(data)
        assert (request.model, request.layer, request.paste.paper) == ("dcgan-digiface",
                                                                       "main.6", True)
