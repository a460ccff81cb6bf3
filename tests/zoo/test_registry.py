"""The registry: built-in plugins, glob listing, clear errors, and a third-party plugin package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rewriting.errors import RewritingError
from zoo.loader import load_model
from zoo.registry import list_models, model_entry

HERE = Path(__file__).parents[1]
ROOT = HERE.parent


def test_embedded_default_is_listed_with_its_layers(dcgan):
    assert [m.name for m in list_models("dcgan*")] == ["dcgan-digiface"]
    assert list_models("no-such-*") == []
    assert list(dcgan.layers) == ["main.0", "main.3", "main.6", "main.9", "main.12"]
    assert dcgan.default_layer == "main.6"
    spec = dcgan.layer("main.6")
    assert (spec.key_grid, spec.value_grid, spec.key_axis) == ((8, 8), (16, 16), 0)
    assert not dcgan.net.training  # BatchNorm in eval mode
    assert load_model("dcgan-digiface") is dcgan  # loaded once, shared


def test_unknown_names_get_suggestions(dcgan):
    with pytest.raises(RewritingError, match="did you mean dcgan-digiface"):
        model_entry("dcgan-digiface2")
    with pytest.raises(RewritingError, match="no rewritable layer 'main.7'.*main.6"):
        dcgan.layer("main.7")


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The third-party package installed (with pip) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(HERE / "third_party_plugin")],
        check=True,
    )
    return target


def _run(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": f"{site}:{ROOT}", "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-m", "rewriting", *args], capture_output=True, text=True, env=env,
        cwd=cwd,
    )


@pytest.mark.slow
def test_third_party_plugin_is_listed_loads_and_edits(plugin_site, tmp_path):
    listed = _run(plugin_site, "models", "tiny*", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [m["name"] for m in json.loads(listed.stdout)] == ["tinygan-demo"]
    request = {
        "model": "tinygan-demo",
        "copy": {"sample": 0, "mask": [0, 0, 4, 4]},
        "paste": {"sample": 1, "mask": [4, 4, 8, 8]},
        "context": [{"sample": 1, "mask": [4, 4, 8, 8]}, {"sample": 2, "mask": [4, 4, 8, 8]}],
    }
    (tmp_path / "request.json").write_text(json.dumps(request))
    edited = _run(
        plugin_site, "edit", "request.json", "--out", "out", "--stats-samples", "100",
        cwd=tmp_path,
    )
    assert edited.returncode == 0, edited.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    # What the request leaves out, the search chose (and recorded) for this plugin's model too.
    assert metrics["model"] == "tinygan-demo"
    assert metrics["rank"] == metrics["search"]["chosen"]["rank"]
    assert metrics["layer"] == metrics["search"]["chosen"]["layer"]
    assert metrics["residual"] < 1.0
    sampled = _run(
        plugin_site, "sample", "--model", "tinygan-demo", "--samples", "0-3",
        "--edit", "out/delta.safetensors", "--out", "grid.png", cwd=tmp_path,
    )
    assert sampled.returncode == 0, sampled.stderr
    assert (tmp_path / "grid.png").stat().st_size > 0


@pytest.mark.slow
def test_an_installed_third_party_plugin_passes_check_plugin(plugin_site, tmp_path):
    checked = _run(plugin_site, "check-plugin", "tinygan", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[-1] == f"{len(lines) - 2} of {len(lines) - 2} contracts hold"
    assert any(line.startswith("layer up: rewrite_value") and " ok" in line for line in lines)
