"""What a visitor reads and sees of an edit: plain words first, figures that follow the strength,
the before/after picture, the pickers, and engine messages without paths or commands.

The stacked edit's picture goes to tests/artifacts/comparison-stacked.png.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from edits import EYES, EYES_TO_EYES

from rewriting.efficacy import MEASURES
from rewriting.errors import RewritingError
from rewriting.request import parse_request
from rewriting_app import comparison_picture as cp
from rewriting_app import session as ss
from rewriting_app.handlers import friendly
from rewriting_app.sentences import (
    NOTHING_AT_ZERO,
    for_visitors,
    layer_choices,
    model_choices,
    result_text,
    solved_text,
    verdict_text,
)
from zoo.registry import list_models

ARTIFACTS = Path(__file__).parents[1] / "artifacts"
#: Another edit to stack on the first: eyes copied from sample 13 onto sample 0.
OTHER_EYES = {**EYES_TO_EYES, "copy": {"sample": 13, "mask": EYES},
              "paste": {"sample": 0, "mask": EYES}}


@pytest.fixture(scope="module")
def measured(dcgan):
    """A real edit on the embedded DCGAN, measured: the session before it, the edited one, the
    samples shown, the pending measure and the metrics."""
    session = ss.Session.start("dcgan-digiface")
    done, shown, pending = ss.execute_shown(session, parse_request(EYES_TO_EYES),
                                            ss.statistics(session), 6)
    metrics = ss.measure(pending)
    return session, ss.with_measures(done, pending, metrics), shown, pending, metrics


def folded(text: str) -> tuple[str, str]:
    """A result text cut into what shows and what its "Exact figures" block folds away."""
    found = re.search(r"<details><summary>Exact figures</summary>(.*)</details>", text, re.S)
    assert found, text
    return text[:found.start()] + text[found.end():], found.group(1)


def test_the_result_leads_with_the_verdict_then_plain_words_then_exact_figures(measured):
    *_, metrics = measured
    text = result_text(1, metrics, 6)
    shown, exact = folded(text)
    verdict = metrics["verdict"].split(":")[0]
    assert text.startswith(f"**Edit 1 applied at strength 2.** **{verdict}.**"), text
    for words in ("How far the rule reached", "On the pasted sample", "How much else changed",
                  "a random change of the same size"):
        assert words in shown
    for jargon in ("goal residual", "||dW||", "keys ->", "held-out", "closed"):
        assert jargon not in shown, jargon
    for figure in ("efficacy", "generalization", "specificity", "artefacts", "||dW||/||W||",
                   "goal residual"):
        assert figure in exact, figure
    assert f"{metrics['efficacy']:.2f} · random {metrics['random_floor']['efficacy']:.2f}" in exact


def test_the_weight_change_and_residual_follow_the_strength(measured):
    before, done, _, pending, metrics = measured
    delta = done.stack.deltas[-1]
    weight = before.generator.parameter(delta.weight)
    ratio = float(delta.dense().norm() / weight.norm())  # at strength 2, from the tensors
    assert metrics["delta_norm_ratio_at_strength"] == pytest.approx(ratio, rel=1e-5)
    assert ratio == pytest.approx(2 * metrics["delta_norm_ratio"], rel=1e-5)  # solved at 1
    half = done.with_strength(0.5).stack.deltas[-1]
    assert not (MEASURES | ss.AT_STRENGTH) & set(half.metrics), "measured at strength 2"
    again = ss.at_strength(pending.probe.problem, half)
    assert again["delta_norm_ratio_at_strength"] == pytest.approx(ratio / 4, rel=1e-5)
    assert again["residual_at_strength"] != pytest.approx(metrics["residual_at_strength"])


def test_at_strength_0_the_result_says_nothing_changed(measured):
    _, done, _, pending, _ = measured
    off = done.with_strength(0.0)
    delta = off.stack.deltas[-1]
    figures = ss.at_strength(pending.probe.problem, delta)
    assert figures == {"residual_at_strength": 1.0, "delta_norm_ratio_at_strength": 0.0}
    for text in (result_text(1, {**delta.metrics, **figures}, 6),
                 solved_text(1, delta.metrics, 6)):
        assert NOTHING_AT_ZERO in text and "Exact figures" not in text
        assert not re.search(r"\d+(\.\d+)?\s*%|\d\.\d", text), text


def cells(picture: np.ndarray, row: int) -> np.ndarray:
    """The samples [N, side, side, 3] of one row of a comparison picture of 64-px samples."""
    side, top = cp.cell_side(64), row * (cp.BAND + cp.cell_side(64) + cp.GAP) + cp.BAND
    return np.stack([picture[top:top + side, x:x + side]
                     for x in range(cp.GAP, picture.shape[1] - side, side + cp.GAP)])


def test_the_picture_is_large_and_names_the_model_before_a_stacked_edit(measured):
    before, done, shown, *_ = measured
    single = np.asarray(ss.comparison(done, shown))
    side = cp.cell_side(64)
    assert side >= 128 and single.shape[1] == cp.COLUMNS * (side + cp.GAP) + cp.GAP
    rows = 3  # original, after, the change
    assert single.shape[0] == rows * (cp.BAND + side + cp.GAP)
    stacked, other_shown, _ = ss.execute_shown(done, parse_request(OTHER_EYES),
                                               ss.statistics(done), 6)
    picture = ss.comparison(stacked, other_shown)
    ARTIFACTS.mkdir(exist_ok=True)
    picture.save(ARTIFACTS / "comparison-stacked.png")
    picture = np.asarray(picture)
    assert picture.shape[0] == single.shape[0] + cp.BAND + side + cp.GAP, "no before row"
    numbers = list(other_shown.numbers[:cp.COLUMNS])
    enlarged = [np.repeat(np.repeat(im, side // 64, 1), side // 64, 2) for im in
                (ss.samples(before, numbers, edited=False), ss.samples(done, numbers))]
    assert np.array_equal(cells(picture, 0), enlarged[0]), "the original model, no edits"
    assert np.array_equal(cells(picture, 1), enlarged[1]), "the model before this edit"


def test_the_model_picker_shows_first_what_loads_now():
    choices = model_choices()
    labels, names = zip(*choices, strict=True)
    assert set(names) == {m.name for m in list_models() if m.unsupported is None}
    assert choices[0] == ("dcgan-digiface (ready)", "dcgan-digiface")
    ready = [label.endswith("(ready)") for label in labels]
    assert ready == sorted(ready, reverse=True), "a model that loads now after one that does not"
    assert not any("size unknown" in label or "embedded" in label for label in labels)
    assert all(re.search(r"\((ready|needs a download( of \d+ MB)?|not on this server)\)$", label)
               for label in labels), labels


def test_layers_are_named_by_what_they_draw(dcgan):
    assert layer_choices(dcgan) == [
        ("main.0 · overall layout (1x1 grid)", "main.0"),
        ("main.3 · overall layout (4x4 grid)", "main.3"),
        ("main.6 · coarse shapes (8x8 grid) · recommended", "main.6"),
        ("main.9 · object parts (16x16 grid)", "main.9"),
        ("main.12 · fine detail (32x32 grid)", "main.12"),
    ]


@pytest.mark.parametrize("message, said", [
    ("unknown model 'x' (did you mean 'y'?) (`python -m rewriting models` lists them)",
     "unknown model 'x' (did you mean 'y'?)"),
    ("request /tmp/gradio/0a1b/edit.json is over the limit of 65536 bytes",
     "request edit.json is over the limit of 65536 bytes"),
    ("/srv/edits/x has no delta.safetensors: give the folder that "
     "`python -m rewriting edit REQUEST --out DIR` wrote", "x has no delta.safetensors"),
    ("the paper's edit files do not record the layer: give --layer",
     "the paper's edit files do not record the layer"),
    ("a/b already exists on the Hub; to add this edit to it as a new commit (replacing files "
     "of the same names), pass --exist-ok", "a/b already exists on the Hub"),
    ("the Hub at https://huggingface.co rejected the token (HTTP 401): it is invalid or "
     "expired; set HF_TOKEN to a valid token (create one at https://huggingface.co/settings)",
     "the Hub at https://huggingface.co rejected the token (HTTP 401): it is invalid or expired"),
    ("checkpoint file ~/models/x.pt does not exist", "checkpoint file x.pt does not exist"),
    ("nothing to paste: brush where the copied region goes and press Paste",
     "nothing to paste: brush where the copied region goes and press Paste"),
])
def test_messages_for_visitors_hold_no_server_path_or_command(message, said):
    assert for_visitors(message) == said


def test_the_reasons_and_advice_read_without_the_solve_s_residual():
    said = verdict_text({
        "verdict": "The edit did not take: it moved the pictures only 5% of the way", "took": False,
        "reasons": ["rank 1 cannot paint the whole object: rank 3 meets more of it (goal "
                    "residual 0.47 instead of 0.68)"],
        "advice": {"label": "layer main.6, rank 3", "checked": "checked on 32 held-out samples"},
    })
    assert said.startswith("**The edit did not take.**\n- Likely reason: rank 1 cannot paint "
                           "the whole object: rank 3 meets more of it.\n"), said
    assert "checked on 32 other samples" in said
    assert "goal residual" not in said and "held-out" not in said


def test_a_warning_shown_to_a_visitor_holds_no_path_or_command():
    def refused():
        raise RewritingError("request /tmp/gradio/0a1b/edit.json is over the limit: run "
                             "`python -m rewriting edit` instead")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        friendly(refused)()
    assert [str(w.message) for w in caught] == ["request edit.json is over the limit"]
