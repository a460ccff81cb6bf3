"""Deploying this repository as a Space: a fresh virtualenv with `requirements.txt` alone (what a
Space installs) runs `python app.py` on the embedded default model, offline."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import gradio_client
import numpy as np
import pytest
from app_server import ROOT, running_app
from PIL import Image

from rewriting.render import render

SHOWN = "0-3"


@pytest.mark.slow
def test_requirements_alone_run_the_app_on_the_default_model(tmp_path: Path, dcgan):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements.txt")],
        capture_output=True, text=True, timeout=1200,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    # Nothing of this repository is installed there: the Space runs app.py from its folder.
    bare = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([str(python), "-c", "import rewriting"], capture_output=True,
                           cwd=tmp_path, env=bare)
    assert probe.returncode != 0

    with running_app(tmp_path, env={"PYTHONPATH": None}, python=str(python)) as url:
        visitor = gradio_client.Client(url, verbose=False, download_files=tempfile.mkdtemp())
        gallery, info = visitor.predict(SHOWN, False, api_name="/sample")
    assert info["model"] == "dcgan-digiface"
    images = np.stack([np.asarray(Image.open(item["image"]).convert("RGB")) for item in gallery])
    assert np.array_equal(images, render(dcgan, [0, 1, 2, 3]).numpy())
