"""What a visitor of the running app waits for: opening the page, Execute, opening a sample and
Revert, as p50 and p95 seconds with one visitor and with several at once.

`python app.py` runs on a free local port (the default model, dcgan-digiface, whose examples
are the edits). Opening the page is what a browser does before the brush canvas is usable: the
page, its config, the load event and the canvas's render (queue calls, as the page makes them),
and every picture they show. The other actions go through the app's API with gradio_client.
`python -m rewriting bench` calls `app_latency`; the engine never imports gradio.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio_client
import httpx
import numpy as np
from PIL import Image

from app_process import ROOT, queue_call, running_app

#: The requests each visitor executes in turn (all on the default model).
EXAMPLES = tuple(sorted((ROOT / "examples").glob("*.json")))
ACTIONS = ("page_open", "execute", "sample_open", "revert")


def page_events(config: dict) -> tuple[int, int]:
    """fn_index of the page's load event and of the brush canvas's render (which follows it)."""
    deps = config["dependencies"]
    load = next(i for i, d in enumerate(deps) if any(t[1] == "load" for t in d["targets"]))
    drawn = set(deps[load]["outputs"])
    canvas = next(i for i, d in enumerate(deps) if d.get("render_id") is not None
                  and any(t[0] in drawn for t in d["targets"]))
    return load, canvas


def file_urls(value: object) -> Iterator[str]:
    """Every file URL in an event's output (the pictures a browser then fetches)."""
    if isinstance(value, dict):
        url = value.get("url")
        if isinstance(url, str) and "/file=" in url:
            yield url
        for item in value.values():
            yield from file_urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from file_urls(item)


def completed(messages: list[dict]) -> dict:
    """The completed message of a queue call, or a clear error when the event failed."""
    done = messages[-1]
    if not done.get("success"):
        raise RuntimeError(f"the app's event failed: {json.dumps(done)[:500]}")
    return done


def open_page(url: str) -> float:
    """Seconds from asking for the page to a usable canvas with the gallery shown."""
    started = time.perf_counter()
    with httpx.Client(timeout=120) as http:
        http.get(url).raise_for_status()
        config = http.get(url.rstrip("/") + "/config").json()
    load, canvas = page_events(config)
    session = uuid.uuid4().hex
    page = completed(queue_call(url, load, [None, 0, 0, None], session))
    drawn = completed(queue_call(url, canvas, [None, 0, "Edited"], session))
    # New connections: the server closes idle ones while the events run.
    with httpx.Client(timeout=120) as http:
        for address in {*file_urls(page["output"]), *file_urls(drawn["output"])}:
            http.get(address).raise_for_status()
    return time.perf_counter() - started


def pictures(gallery: list) -> np.ndarray:
    """The images of a gallery output, in order."""
    return np.stack([np.asarray(Image.open(item["image"]).convert("RGB"), np.int16)
                     for item in gallery])


class Visitor:
    """One visitor's API session: each round opens the page, executes an example, opens the
    paste sample, and reverts the edit (so every Execute starts from the unedited model)."""

    def __init__(self, url: str, times: dict[str, list[float]], changes: list[float]) -> None:
        self.url, self.times, self.changes = url, times, changes
        self.client = gradio_client.Client(url, verbose=False, download_files=tempfile.mkdtemp())

    def timed(self, action: str, call: Callable[[], object]) -> object:
        """What `call` returns; its seconds are added to the action's."""
        started = time.perf_counter()
        out = call()
        self.times[action].append(time.perf_counter() - started)
        return out

    def round(self, example: Path) -> None:
        """One round on the request in `example`."""
        text = example.read_text()
        self.timed("page_open", lambda: open_page(self.url))
        info, gallery = self.timed("execute", lambda: self.client.predict(
            text, api_name="/execute"))
        if info.get("edits") != 1:
            raise RuntimeError(f"Execute of {example.name} made no edit: {info}")
        images = pictures(gallery)
        half = len(images) // 2
        self.changes.append(float(np.abs(images[half:] - images[:half]).mean()))
        paste = json.loads(text)["paste"]["sample"]
        self.timed("sample_open", lambda: self.client.predict(
            str(paste), True, api_name="/sample"))
        self.timed("revert", lambda: self.client.predict("0", api_name="/revert"))


def together(url: str, visitors: int, rounds: int) -> tuple[dict[str, list[float]], list[float]]:
    """Seconds of each action over `rounds` rounds of `visitors` visitors acting at once, and
    each Execute's mean pixel change (before to after, on the samples it shows)."""
    times: dict[str, list[float]] = {action: [] for action in ACTIONS}
    changes: list[float] = []
    people = [Visitor(url, times, changes) for _ in range(visitors)]
    start, failures = threading.Barrier(visitors), []

    def act(index: int, person: Visitor) -> None:
        start.wait()
        try:
            for r in range(rounds):
                person.round(EXAMPLES[(index + r) % len(EXAMPLES)])
        except Exception as err:  # reported below, in the caller's thread
            failures.append(err)

    threads = [threading.Thread(target=act, args=pair) for pair in enumerate(people)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return times, changes


def percentiles(seconds: list[float], suffix: str, action: str) -> dict[str, float]:
    """p50 and p95 of an action's seconds, named `{action}_p50_s{suffix}` and so on."""
    p50, p95 = np.percentile(seconds, [50, 95])
    return {f"{action}_p50_s{suffix}": float(p50), f"{action}_p95_s{suffix}": float(p95)}


def app_latency(visitors: int = 4, rounds: int = 3, cache: Path | None = None) -> dict:
    """The app's latencies for one visitor, then `visitors` at once, `rounds` rounds each
    (after one untimed round that loads the statistics); `cache` is the statistics cache."""
    report: dict = {"model": "dcgan-digiface", "visitors": visitors, "rounds": rounds,
                    "examples": [p.name for p in EXAMPLES]}
    changes: list[float] = []
    with tempfile.TemporaryDirectory(prefix="app-bench-") as folder:
        env = {"REWRITING_CACHE": str(cache)} if cache else {}
        with running_app(Path(folder), env=env) as url:
            together(url, 1, 1)
            for count, suffix in ((1, "_1"), (visitors, "")):
                times, made = together(url, count, rounds)
                changes += made
                for action in ACTIONS:
                    report.update(percentiles(times[action], suffix, action))
                report[f"calls{suffix}"] = len(times["execute"])
    report["page_open_s"] = report["page_open_p50_s"]
    report["execute_mean_change"] = float(np.mean(changes))
    return report
