"""The app's API through gradio_client: per-visitor edits, a fresh visitor, and bad input."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import gradio_client
import numpy as np
import pytest
from app_server import running_app
from PIL import Image

from rewriting.render import render
from zoo.loader import load_model

#: Every test here drives a running app server: the full suite runs them, not the fast tier.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
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
    """A new visitor; each downloads to its own folder (gradio_client names files by content,
    so visitors in threads sharing one folder would overwrite each other's files)."""
    return gradio_client.Client(url, verbose=False, download_files=tempfile.mkdtemp())


def pictures(gallery: list) -> np.ndarray:
    """The images of a gallery output, in order."""
    return np.stack([np.asarray(Image.open(item["image"]).convert("RGB")) for item in gallery])


def sample(visitor, edited: bool = True) -> tuple[np.ndarray, dict]:
    gallery, info = visitor.predict(SHOWN, edited, api_name="/sample")
    return pictures(gallery), info


@pytest.mark.slow
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
        # The 6 held-out samples where the rule fires most, before then after.
        assert len(images) == 12 and metrics["samples"] == sorted(metrics["samples"])

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


CONCURRENT_SECONDS = 30


@pytest.mark.slow
def test_six_concurrent_visitors_each_see_only_their_own_model(url):
    """Six visitors render at once for 30 s (two with edits, four without) while a seventh
    executes and reverts edits: every image is what that visitor's own stack gives alone."""
    edited = [client(url), client(url)]
    for visitor, request in zip(edited, (EYE_TO_MOUTH, MOUTH_TO_EYE), strict=True):
        visitor.predict(json.dumps(request), api_name="/execute")
    visitors = edited + [client(url) for _ in range(4)]
    base = render(load_model("dcgan-digiface"), list(range(1000, 1006))).numpy()
    alone = [sample(visitor)[0] for visitor in visitors]
    assert not np.array_equal(alone[0], base) and not np.array_equal(alone[1], base)
    assert not np.array_equal(alone[0], alone[1])
    assert all(np.array_equal(images, base) for images in alone[2:])

    deadline = time.monotonic() + CONCURRENT_SECONDS
    outcomes: list[tuple[int, bool]] = []
    edits_done: list[int] = []
    errors: list[BaseException] = []

    def watch(index: int) -> None:
        visitor, flip = visitors[index], False
        while time.monotonic() < deadline:
            flip = not flip
            images, _ = sample(visitor, edited=flip or index >= 2)
            expected = alone[index] if flip or index >= 2 else base
            outcomes.append((index, np.array_equal(images, expected)))

    def edit_and_revert() -> None:
        visitor = client(url)
        while time.monotonic() < deadline:
            metrics, _ = visitor.predict(json.dumps(MOUTH_TO_EYE), api_name="/execute")
            edits_done.append(metrics["edits"])
            visitor.predict(0, api_name="/revert")

    def guarded(job, *args) -> None:
        try:
            job(*args)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            errors.append(err)

    threads = [threading.Thread(target=guarded, args=(watch, i)) for i in range(len(visitors))]
    threads.append(threading.Thread(target=guarded, args=(edit_and_revert,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=CONCURRENT_SECONDS + 240)
    assert not errors, errors
    per_visitor = [sum(1 for i, _ in outcomes if i == v) for v in range(len(visitors))]
    assert min(per_visitor) >= 2, per_visitor  # every visitor rendered again and again
    wrong = [i for i, ok in outcomes if not ok]
    assert not wrong, f"{len(wrong)} of {len(outcomes)} renders showed another visitor's model"
    assert edits_done and set(edits_done) == {1}

    # Afterwards the shared model is untouched: a newcomer sees the original, edits still work.
    assert np.array_equal(sample(client(url))[0], base)
    edited[0].predict(0, api_name="/revert")
    assert np.array_equal(sample(edited[0])[0], base)
    metrics, _ = edited[0].predict(json.dumps(EYE_TO_MOUTH), api_name="/execute")
    assert metrics["edits"] == 1 and np.array_equal(sample(edited[0])[0], alone[0])
