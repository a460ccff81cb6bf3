"""Bad input through the app's API (one server): a message each time, the visitor's state kept.

One visitor makes an edit, then sends every bad input; afterwards it still sees exactly the
images and edit history it had (a change any case made would persist until that check).
"""

from __future__ import annotations

import json

import gradio_client
import numpy as np
import pytest
from app_server import running_app
from bad_inputs import EXAMPLE, requests
from PIL import Image

from rewriting.limits import MAX_APP_SAMPLES

#: Every test here drives a running app server: the full suite runs them, not the fast tier.
pytestmark = pytest.mark.slow

EYES, MOUTH = [24, 16, 40, 48], [40, 16, 56, 48]
MOUTH_TO_EYE = {
    "model": "dcgan-digiface", "layer": "main.6",
    "copy": {"sample": 7, "mask": MOUTH}, "paste": {"sample": 1, "mask": EYES},
    "context": [{"sample": 1, "mask": EYES}, {"sample": 12, "mask": EYES}],
}
WATCHED = "1000,1003"


class Visitor:
    """A client with one edit made, and what it saw right after."""

    def __init__(self, url: str) -> None:
        self.client = gradio_client.Client(url, verbose=False)
        self.client.predict(json.dumps(MOUTH_TO_EYE), api_name="/execute")
        self.images, self.info = self.look()
        assert self.info["edits"] and not np.array_equal(self.images, self.look(False)[0])

    def look(self, edited: bool = True) -> tuple[np.ndarray, dict]:
        gallery, info = self.client.predict(WATCHED, edited, api_name="/sample")
        images = [np.asarray(Image.open(item["image"]).convert("RGB")) for item in gallery]
        return np.stack(images), info

    def refused(self, message: str, *args, api_name: str) -> None:
        """The call fails with `message` as its one-line error (not a generic one)."""
        with pytest.raises(gradio_client.exceptions.AppError) as caught:
            self.client.predict(*args, api_name=api_name)
        text = str(caught.value)
        assert "\n" not in text.strip(), text
        assert any(part in text for part in message.split("|")), text


@pytest.fixture(scope="module")
def visitor(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app")) as url:
        yield Visitor(url)


LIMIT = f"more than {MAX_APP_SAMPLES}"
SAMPLES = {
    "sample abc": ("abc", True, "bad sample list"),
    "sample -1": ("-1", True, "bad sample list"),
    "sample 0-1999": ("0-1999", True, LIMIT),
    "sample one over the cap": (f"0-{MAX_APP_SAMPLES}", True, LIMIT),
    "sample 10**12": ("1000000000000", True, "out of range"),
    "sample 0-10**12": ("0-1000000000000", True, "out of range"),
    "sample 99999-100000": ("99999-100000", True, "out of range"),
    "sample 3-1": ("3-1", True, "first <= last"),
    "sample empty": ("", True, "bad sample list"),
    "sample 1,,2": ("1,,2", True, "bad sample list"),
    "sample spaces": ("  ", True, "bad sample list"),
    "sample 0-10,x": ("0-10,x", True, "bad sample list"),
    "sample 1.5": ("1.5", True, "bad sample list"),
    "sample none": (None, True, "must be text"),
    "sample edited abc": ("0-3", "abc", "edited must be true or false"),
    "sample edited 7": ("0-3", 7, "edited must be true or false"),
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_bad_sample_calls(name, visitor):
    text, edited, message = SAMPLES[name]
    visitor.refused(message, text, edited, api_name="/sample")


REVERTS = {
    "revert abc": ("abc", "whole number"),
    "revert 1.5": ("1.5", "whole number"),
    "revert empty": ("", "whole number"),
    "revert none": (None, "whole number"),
    "revert 1e3": ("1e3", "whole number"),
    "revert 5": ("5", "no edit number 5"),
    "revert -5": ("-5", "no edit number -5"),
    "revert 10**20": (10**20, "no edit number"),
}


@pytest.mark.parametrize("name", list(REVERTS))
def test_bad_revert_calls(name, visitor):
    index, message = REVERTS[name]
    visitor.refused(message, index, api_name="/revert")


EXECUTES = {
    **requests(),
    # A session with edits stays on its model: another model's request is refused as such.
    "model unknown": (requests()["model unknown"][0], "this session edits 'dcgan-digiface'"),
    "request not text": ({"model": "dcgan-digiface"}, "not valid JSON"),
}


@pytest.mark.parametrize("name", list(EXECUTES))
def test_bad_execute_calls(name, visitor):
    text, message = EXECUTES[name]
    visitor.refused(message, text, api_name="/execute")


def test_the_visitor_kept_its_state(visitor):
    """After every bad call above: the same edited images and the same edit history."""
    images, info = visitor.look()
    assert np.array_equal(images, visitor.images)
    assert info == visitor.info


def test_the_good_request_still_executes(visitor):
    """The bad requests differ from this one in one way each: it runs, as a second edit."""
    metrics, images = visitor.client.predict(json.dumps(EXAMPLE), api_name="/execute")
    assert metrics["edits"] == 2 and len(images) == 12  # 6 samples, before and after
