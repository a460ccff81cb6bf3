"""The app's API through gradio_client: per-visitor edits, a fresh visitor, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import gradio_client
import numpy as np
import pytest
from app_server import running_app
from PIL import Image

from rewriting.render import render
from zoo.registry import load_model

ROOT = Path(__file__).resolve().parents[1]
SHOWN = "1000-1005"
EYES, MOUTH = [24, 16, 40, 48], [40, 16, 56, 48]
EYE_TO_MOUTH = json.loads((ROOT / "examples" / "eye-to-mouth.json").read_text())
MOUTH_TO_EYE = {
    "model": "dcgan-digiface", "layer": "main.6",
    "copy": {"sample": 7, "mask": MOUTH}, "paste": {"sample": 1, "mask": EYES},
    "context": [{"sample": 1, "mask": EYES}, {"sample": 12, "mask": EYES}],
}


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app")) as address:
        yield address


def client(url: str):
    return gradio_client.Client(url, verbose=False)


def pictures(gallery: list) -> np.ndarray:
    """The images of a gallery output, in order."""
    return np.stack([np.asarray(Image.open(item["image"]).convert("RGB")) for item in gallery])


def sample(visitor, edited: bool = True) -> tuple[np.ndarray, dict]:
    gallery, info = visitor.predict(SHOWN, edited, api_name="/sample")
    return pictures(gallery), info


def test_sessions_see_only_their_own_edits(url):
    first, second, fresh = client(url), client(url), client(url)
    jobs = [
        first.submit(json.dumps(EYE_TO_MOUTH), api_name="/execute"),
        second.submit(json.dumps(MOUTH_TO_EYE), api_name="/execute"),
    ]
    results = [job.result(timeout=240) for job in jobs]
    for metrics, images in results:
        assert metrics["edits"] == 1
        assert metrics["change_inside"] > metrics["change_outside"]
        assert len(images) == 16  # 8 most changed held-out samples, before then after

    base = render(load_model("dcgan-digiface"), list(range(1000, 1006))).numpy()
    mine, info = sample(first)
    theirs, _ = sample(second)
    untouched, fresh_info = sample(fresh)
    assert np.array_equal(untouched, base)
    assert fresh_info["edits"] == []
    assert info["edits"] and "copy #1" in info["edits"][0]
    assert not np.array_equal(mine, base)
    assert not np.array_equal(theirs, base)
    assert not np.array_equal(mine, theirs)
    assert np.array_equal(sample(first, edited=False)[0], base)

    # Reverting the edit brings this visitor back to the original model, and only this one.
    first.predict(0, api_name="/revert")
    assert np.array_equal(sample(first)[0], base)
    assert np.array_equal(sample(second)[0], theirs)


BAD_REQUESTS = [
    (json.dumps({**EYE_TO_MOUTH, "paste": {"sample": 7, "mask": [40, 16, 99, 48]}}), "outside"),
    (json.dumps({**EYE_TO_MOUTH, "layer": "main.77"}), "no rewritable layer"),
    (json.dumps({k: v for k, v in EYE_TO_MOUTH.items() if k != "copy"}), '"copy"'),
    ("{not json", "not valid JSON"),
]


def test_bad_requests_give_the_message_and_keep_state(url):
    visitor = client(url)
    visitor.predict(json.dumps(MOUTH_TO_EYE), api_name="/execute")
    before, info = sample(visitor)
    for text, message in BAD_REQUESTS:
        with pytest.raises(gradio_client.exceptions.AppError, match=message):
            visitor.predict(text, api_name="/execute")
    with pytest.raises(gradio_client.exceptions.AppError, match="no edit number 3"):
        visitor.predict(3, api_name="/revert")
    after, info_after = sample(visitor)
    assert np.array_equal(before, after)
    assert info_after["edits"] == info["edits"]
