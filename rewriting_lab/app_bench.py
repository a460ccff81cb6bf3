"""What a visitor of the running app waits for: opening the page, Execute, its measures,
opening a sample and Revert, as p50 and p95 seconds with one visitor and with several at once.

`python app.py` runs on a free local port (the default model, dcgan-digiface, whose example
buttons are the edits). The page and its buttons are driven by queue calls, as a browser makes
them, each followed by the pictures it shows: opening the page is the page, its config, the
load event and every event it fires (the canvases drawn); Execute is a click on an example
button until its before/after picture is on screen, and its measures are the events the page
then fires until the figures are in the result text. Opening a sample and Revert go through
the app's API with gradio_client, in the same session. `python -m rewriting bench` calls
`app_latency`; the app runs in a child process, so nothing here imports app.py or gradio.
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

from .app_process import ROOT, TLS, queue_calls, running_app

EXAMPLES_DIR = ROOT / "examples"
#: The app's example buttons (label -> request file in EXAMPLES_DIR), in the page's order.
EXAMPLES = json.loads((EXAMPLES_DIR / "buttons.json").read_text())
#: The example buttons each visitor clicks in turn (elem_id, paste sample), on the default model.
BUTTONS = tuple((f"example-{i}", json.loads((EXAMPLES_DIR / name).read_text())["paste"]["sample"])
                for i, name in enumerate(EXAMPLES.values()))
ACTIONS = ("page_open", "execute", "measures", "sample_open", "revert")


def clicked(config: dict, elem_id: str) -> int:
    """fn_index of the click on the button `elem_id`."""
    ids = {c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id}
    return next(i for i, d in enumerate(config["dependencies"])
                if any(t[0] in ids and t[1] == "click" for t in d["targets"]))


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


def fetch(*outputs: dict) -> None:
    """Fetch every picture the events' outputs show, as the page does."""
    # New connections: the server closes idle ones while the events run.
    with httpx.Client(timeout=120, verify=TLS) as http:
        for address in {url for output in outputs for url in file_urls(output)}:
            http.get(address).raise_for_status()


class Browser:
    """One open page: its session, and the events it fires as the page does. After an event,
    the page fires at once every event that follows it on success and every listener of a state
    it changed (a re-render of the brush canvas, keeping the session in the browser), and so
    on until none is left."""

    def __init__(self, url: str, config: dict, session: str) -> None:
        self.url, self.config, self.session = url, config, session
        self.deps = config["dependencies"]
        self.components = {c["id"]: c for c in config["components"]}

    def inputs(self, fn_index: int) -> list:
        """What the page sends for an event's inputs: its components' first values (states
        are the server's)."""
        return [None if self.components[i]["type"] == "state"
                else self.components[i].get("props", {}).get("value")
                for i in self.deps[fn_index]["inputs"]]

    def followers(self, fn_index: int, done: dict) -> list[int]:
        """The server events the page fires once event `fn_index` completed with message `done`
        (one that only runs JavaScript, such as unlocking the edit buttons, stays in the page)."""
        changed = set(done["output"].get("changed_state_ids") or ())
        return [i for i, d in enumerate(self.deps) if d.get("backend_fn", True) and (
                d.get("trigger_after") == fn_index
                or any(t[0] in changed and t[1] == "change" for t in d["targets"]))]

    def run(self, fn_index: int, data: list | None = None) -> dict[int, float]:
        """Fire event `fn_index` and everything that follows it; seconds from the start to each
        event's outputs on screen (its pictures fetched), by fn_index (the last, if repeated)."""
        started = time.perf_counter()
        seen: dict[int, float] = {}
        wave = [(fn_index, self.inputs(fn_index) if data is None else data)]
        while wave:
            messages = queue_calls(self.url, wave, self.session)
            after = []
            for (i, _), message in zip(wave, messages, strict=True):
                done = completed(message)
                fetching = time.perf_counter()
                fetch(done["output"])
                seen[i] = done["received"] - started + time.perf_counter() - fetching
                after += [(j, self.inputs(j)) for j in self.followers(i, done)]
            wave = after
        return seen


def open_page(url: str, session: str | None = None) -> float:
    """Seconds from asking for the page to a usable canvas with the gallery shown (in a new
    session, or in `session`)."""
    started = time.perf_counter()
    with httpx.Client(timeout=120, verify=TLS) as http:
        http.get(url).raise_for_status()
        config = http.get(url.rstrip("/") + "/config").json()
    deps = config["dependencies"]
    load = next(i for i, d in enumerate(deps) if any(t[1] == "load" for t in d["targets"]))
    asked = time.perf_counter() - started
    seen = Browser(url, config, session or uuid.uuid4().hex).run(load)
    # Usable once every event the load fires has drawn (the canvases it fills included).
    return asked + max(seen.values())


def pictures(gallery: list) -> np.ndarray:
    """The images of a gallery output, in order."""
    return np.stack([np.asarray(Image.open(item["image"]).convert("RGB"), np.int16)
                     for item in gallery])


class Visitor:
    """One visitor: each round opens the page in a new session, clicks an example button,
    waits for its measures, opens the paste sample and reverts the edit (so every Execute
    starts from the unedited model)."""

    def __init__(self, url: str, times: dict[str, list[float]], changes: list[float]) -> None:
        self.url, self.times, self.changes = url, times, changes
        self.client = gradio_client.Client(url, verbose=False, download_files=tempfile.mkdtemp())
        self.config = httpx.get(url.rstrip("/") + "/config", timeout=120).json()

    def timed(self, action: str, call: Callable[[], object]) -> object:
        """What `call` returns; its seconds are added to the action's."""
        started = time.perf_counter()
        out = call()
        self.times[action].append(time.perf_counter() - started)
        return out

    def execute(self, button: str, session: str) -> None:
        """Click `button`: seconds to its before/after picture on screen, and to its measures
        in the result text."""
        browser = Browser(self.url, self.config, session)
        click = clicked(self.config, button)
        seen = browser.run(click)
        measure = [s for i, s in seen.items()
                   if browser.deps[i]["api_name"].startswith("measure_pending")]
        if not measure:
            raise RuntimeError(f"the click on {button} measured nothing")
        self.times["execute"].append(seen[click])
        self.times["measures"].append(measure[0])

    def round(self, button: str, paste: int) -> None:
        """One round on the example button `button` whose request pastes on sample `paste`."""
        self.client.reset_session()
        session = self.client.session_hash
        self.timed("page_open", lambda: open_page(self.url, session))
        self.execute(button, session)
        edited, info = self.timed("sample_open", lambda: self.client.predict(
            str(paste), True, api_name="/sample"))
        if len(info.get("edits", [])) != 1:
            raise RuntimeError(f"the click on {button} made no edit: {info}")
        original, _ = self.client.predict(str(paste), False, api_name="/sample")
        self.changes.append(float(np.abs(pictures(edited) - pictures(original)).mean()))
        self.timed("revert", lambda: self.client.predict("0", api_name="/revert"))


def together(url: str, visitors: int, rounds: int) -> tuple[dict[str, list[float]], list[float]]:
    """Seconds of each action over `rounds` rounds of `visitors` visitors acting at once, and
    each Execute's mean pixel change on its paste sample (original to edited)."""
    times: dict[str, list[float]] = {action: [] for action in ACTIONS}
    changes: list[float] = []
    people = [Visitor(url, times, changes) for _ in range(visitors)]
    start, failures = threading.Barrier(visitors), []

    def act(index: int, person: Visitor) -> None:
        start.wait()
        try:
            for r in range(rounds):
                person.round(*BUTTONS[(index + r) % len(BUTTONS)])
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
                    "examples": list(EXAMPLES.values())}
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
