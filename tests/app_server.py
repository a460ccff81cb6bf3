"""Run app.py in a child process on a free port, with the statistics cache in a given folder."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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

    `env` adds to (or, with a value of None, removes from) the environment the app gets;
    `python` is the interpreter (another virtualenv's).
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


def app_log(folder: Path) -> str:
    """What the app printed, for a failing test's message."""
    path = folder / "app.log"
    return path.read_text()[-4000:] if path.exists() else ""
