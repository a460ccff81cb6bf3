"""notebooks/rewrite.ipynb runs offline on the embedded DCGAN and shows its edit's measures
(nbmake runs it as `python -m pytest --nbmake notebooks/` does)."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbmake.nb_run import NotebookRun

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "rewrite.ipynb"


@pytest.mark.slow
def test_the_notebook_runs_offline_on_the_embedded_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the kernel inherits the environment
    result = NotebookRun(NOTEBOOK, default_timeout=60).execute()
    assert result.error is None, result.error.summary
    printed = "".join(output.get("text", "") for cell in result.nb.cells
                      for output in cell.get("outputs", []))
    assert "model dcgan-digiface" in printed and "efficacy" in printed
    images = [o for cell in result.nb.cells for o in cell.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the before/after picture
