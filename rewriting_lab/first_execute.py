"""The first Execute of an example on a fresh server: what a visitor waits for who clicks an
example button first on an app that has just started (and finished its warm-up).

Each start runs `python app.py` in a child process on a statistics cache of its own: the first
start on an empty cache (the app computes its statistics during the warm-up, as on its first
start ever), the others on the cache it left. The app's warm-up ends with a line on stderr
(`WARM_DONE`); then the page is opened in a new session, untimed, and one example button
clicked (each button on servers of its own): the figure is the seconds from the click to its
result on screen (its before/after picture fetched), the measures that follow it not included.
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from .app_bench import BUTTONS, TLS, Browser, clicked, open_page
from .app_process import running_app
from .machine import machine

#: The line the app's warm-up ends with (`rewriting_app.warm.WARM_DONE`: the lab imports no
#: part of the app, so the text is repeated here, and a test checks that both agree).
WARM_DONE = "warm-up done"
#: What the warm-up logs of each layer's statistics.
STATISTICS_LINE = re.compile(r"^statistics for .*$", re.MULTILINE)


def warmed_up(log: Path, timeout: float = 600.0) -> None:
    """Wait until the app's log says that its warm-up is done."""
    deadline = time.monotonic() + timeout
    while WARM_DONE not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the app's warm-up did not end in {timeout:g} s")
        time.sleep(0.1)


def one_start(cache: Path, button: str = BUTTONS[0][0]) -> dict:
    """Start the app on the statistics cache `cache`: seconds until it serves, until its
    warm-up is done, and of the Execute of the example `button`; the warm-up's statistics
    lines."""
    with tempfile.TemporaryDirectory(prefix="app-first-") as folder:
        log = Path(folder) / "app.log"
        started = time.perf_counter()
        with running_app(Path(folder), env={"REWRITING_CACHE": str(cache)}) as url:
            served = time.perf_counter() - started
            warmed_up(log)
            warm = time.perf_counter() - started
            config = httpx.get(url.rstrip("/") + "/config", timeout=120, verify=TLS).json()
            session = uuid.uuid4().hex
            open_page(url, session)
            browser = Browser(url, config, session)
            click = clicked(config, button)
            execute = browser.run(click)[click]
        lines = STATISTICS_LINE.findall(log.read_text(errors="replace"))
    return {"served_s": served, "warm_up_s": warm, "execute_s": execute, "statistics": lines}


def first_execute(starts: int = 3) -> dict:
    """Each example's first Execute on `starts` fresh servers whose statistics are cached
    (median and each, per button; over all, the median and the slowest), after one first start
    on an empty cache (its figures apart); the machine, and its load average at the end (on a
    shared machine the figures vary with it)."""
    with tempfile.TemporaryDirectory(prefix="app-first-cache-") as cache:
        first = one_start(Path(cache))
        again = {button: [one_start(Path(cache), button) for _ in range(starts)]
                 for button, _ in BUTTONS}
    every = [a for runs in again.values() for a in runs]
    buttons = {button: {"execute_s": statistics.median(a["execute_s"] for a in runs),
                        "execute_runs_s": [a["execute_s"] for a in runs]}
               for button, runs in again.items()}
    return {
        "starts": starts, "buttons": buttons,
        "execute_s": statistics.median(a["execute_s"] for a in every),
        "slowest_s": max(a["execute_s"] for a in every),
        "served_s": statistics.median(a["served_s"] for a in every),
        "warm_up_s": statistics.median(a["warm_up_s"] for a in every),
        "statistics": every[-1]["statistics"],
        "first_start": first, "machine": machine(), "load_average": os.getloadavg(),
    }
