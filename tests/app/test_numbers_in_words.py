"""The photo panel's Steps, its Cancel and the full weights' download, called as the page calls
their handlers (in-process, no browser): numbers out of range are clamped with a warning in
words (never Gradio's red Error), a cancelled projection says so, and a download with no edits
is refused with a warning and no file."""

from __future__ import annotations

import json
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from PIL import Image

import app
from rewriting.render import render
from rewriting_app import file_events, photo
from rewriting_app import session as ss
from rewriting_app.settings import MAX_PHOTO_STEPS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "examples" / "eye-to-mouth.json").read_text())
#: The crop of the whole 64 px picture (no face detection needed).
WHOLE = "0,0,64"


def no_progress(*args, **kwargs) -> None:
    """A progress tracker that shows nothing."""


@pytest.fixture(scope="module")
def handlers() -> dict:
    """The page's handlers by name, with their input and output components."""
    demo = app.build()
    return {fn.name: fn for fn in demo.fns.values() if fn.fn is not None}


@pytest.fixture(scope="module")
def photo_path(tmp_path_factory, dcgan) -> str:
    """A 64 px photo: one of the model's own samples."""
    path = tmp_path_factory.mktemp("photo") / "face.png"
    Image.fromarray(render(dcgan, [3]).numpy()[0]).save(path)
    return str(path)


def shown(call) -> tuple[object, list[str]]:
    """What a handler returns, and the warnings it showed (Gradio's, outside an event:
    Python warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = call()
    return out, [str(w.message) for w in caught if Path(w.filename).parent.name == "gradio"]


def visitor(name: str) -> SimpleNamespace:
    """The request of a visitor whose session hash is `name`."""
    return SimpleNamespace(session_hash=name)


def project_with(handlers: dict, path: str, steps: object, who: str = "a") -> tuple:
    run = handlers["run_projection"]
    return shown(lambda: run.fn(path, WHOLE, steps, None, visitor(who), progress=no_progress))


def test_the_steps_field_leaves_its_range_to_the_handler(handlers):
    steps = handlers["run_projection"].inputs[2]
    assert steps.elem_id == "photo-steps" and steps.minimum is None and steps.maximum is None
    for value in (0, -5, 99999):  # Gradio's own check would answer with a red Error
        assert steps.preprocess(value) == value


@pytest.mark.parametrize("steps, used, said", [
    (0, 1, f"steps go from 1 to {MAX_PHOTO_STEPS}; using 1"),
    (-3, 1, f"steps go from 1 to {MAX_PHOTO_STEPS}; using 1"),
    (99999, MAX_PHOTO_STEPS, f"steps go from 1 to {MAX_PHOTO_STEPS}; using {MAX_PHOTO_STEPS}"),
    (2, 2, None),
])
def test_steps_out_of_range_are_clamped_with_a_warning(handlers, photo_path, monkeypatch,
                                                        steps, used, said):
    asked = []
    real = photo.project

    def short(generator, target, steps, progress):
        asked.append(steps)
        return real(generator, target, steps=1, progress=progress)

    monkeypatch.setattr(photo, "project", short)
    out, warned = project_with(handlers, photo_path, steps)
    assert asked == [used]
    assert warned == ([said] if said else [])
    assert "PSNR" in out[4]  # the projection's figures, shown in the panel


@pytest.mark.parametrize("steps", ["abc", None, "1.5"])
def test_steps_that_are_no_whole_number_are_a_warning(handlers, photo_path, steps):
    out, warned = project_with(handlers, photo_path, steps)
    assert isinstance(out, type(gr.skip()))
    assert len(warned) == 1 and "the number of steps must be a whole number" in warned[0]


def test_cancel_with_no_projection_says_nothing_changed(handlers):
    cancel = handlers["cancel"]
    assert [c.elem_id for c in cancel.outputs] == ["photo-info"]
    assert cancel.fn(visitor("idle")) == "No projection is running now: the photo was not changed."


def test_cancel_stops_a_running_projection_and_confirms_it(handlers, photo_path):
    ended = []
    worker = threading.Thread(target=lambda: ended.append(
        project_with(handlers, photo_path, MAX_PHOTO_STEPS, "busy")))
    worker.start()
    deadline = time.monotonic() + 60
    while "busy" not in photo.PROJECTING:
        assert time.monotonic() < deadline and worker.is_alive(), ended
        time.sleep(0.01)
    assert handlers["cancel"].fn(visitor("busy")) == (
        "Projection cancelled: the photo was not changed.")
    worker.join(60)
    out, warned = ended[0]
    assert isinstance(out, type(gr.skip()))  # nothing on the page changes
    assert warned == ["Projection cancelled: the photo was not changed."]
    assert "busy" not in photo.PROJECTING
    # The next projection of that visitor runs.
    out, warned = project_with(handlers, photo_path, 1, "busy")
    assert warned == [] and "PSNR" in out[4]


def test_full_weights_with_no_edits_are_refused_in_words(handlers, dcgan, monkeypatch):
    made = []
    monkeypatch.setattr(file_events, "download_dir", lambda: made.append(1))
    download = handlers["download_weights"]
    for state in (None, ss.Session.start("dcgan-digiface")):
        out, warned = shown(lambda state=state: download.fn(state, progress=no_progress))
        assert isinstance(out, type(gr.skip()))
        assert warned == ["there are no edits to download yet: Execute one first"]
    assert made == []


def test_full_weights_with_an_edit_are_a_file(handlers, dcgan, tmp_path, monkeypatch):
    session, request = ss.Session.start("dcgan-digiface").loaded(EXAMPLE)
    edited, _ = ss.run_edit(session, request, ss.statistics(session))
    monkeypatch.setattr(file_events, "download_dir", lambda: tmp_path)
    out, warned = shown(lambda: handlers["download_weights"].fn(edited, progress=no_progress))
    assert warned == [] and Path(out) == tmp_path / "dcgan-digiface-edited.safetensors"
    assert Path(out).stat().st_size > 1e6
