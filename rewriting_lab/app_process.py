"""Run app.py in a child process on a free local port, and call its events as a browser does."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx

#: The checkout, where app.py is.
ROOT = Path(__file__).resolve().parents[1]
#: One TLS context for every client: building one (loading the CA bundle) costs about 30 ms,
#: which a browser never pays per request.
TLS = ssl.create_default_context()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(
    folder: Path, timeout: float = 120.0, env: dict[str, str | None] | None = None,
    python: str = sys.executable,
) -> Iterator[str]:
    """`python app.py` serving on 127.0.0.1:<free port>; yields its URL, stops it afterwards.

    The app logs to `folder`/app.log and caches statistics in `folder`/cache; `env` adds to
    (or, with a value of None, removes from) the environment the app gets; `python` is the
    interpreter (another virtualenv's).
    """
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "REWRITING_CACHE": str(folder / "cache"),
        **(env or {}),
    }
    env = {key: value for key, value in env.items() if value is not None}
    log_path = folder / "app.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [python, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited early:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError as err:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"app.py did not answer on {url} in {timeout} s") from err
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def queue_call(url: str, fn_index: int, data: list, session_hash: str) -> list[dict]:
    """Join the queue as a browser would, for any event; every message until it completes."""
    return queue_calls(url, [(fn_index, data)], session_hash)[0]


def queue_calls(url: str, calls: list[tuple[int, list]], session_hash: str) -> list[list[dict]]:
    """Join the queue for several events at once (as a browser fires the events that follow
    one), reading the session's one stream; each event's messages until it completes, the
    last stamped with the `perf_counter` second it arrived ("received")."""
    api = url.rstrip("/") + "/gradio_api/"
    events = []
    with httpx.Client(timeout=240, verify=TLS) as http:
        for fn_index, data in calls:
            joined = http.post(api + "queue/join", json={
                "data": data, "fn_index": fn_index, "session_hash": session_hash,
                "event_data": None, "trigger_id": None,
            })
            joined.raise_for_status()
            events.append(joined.json()["event_id"])
        messages: dict[str, list[dict]] = {event: [] for event in events}
        waiting = set(events)
        listen = {"session_hash": session_hash}
        with http.stream("GET", api + "queue/data", params=listen) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                event = message.get("event_id")
                if event in waiting:
                    messages[event].append(message)
                    if message["msg"] == "process_completed":
                        message["received"] = time.perf_counter()
                        waiting.discard(event)
                        if not waiting:
                            return [messages[event] for event in events]
    raise RuntimeError(f"the calls ended without completing: {messages}")
