"""`bench` and `evaluate` report every figure they promise (their values are not asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).parents[2]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "rewriting", *args], capture_output=True, text=True, cwd=cwd
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_bench_writes_every_figure(tmp_path):
    done = run("bench", "--quick", "--no-stylegan2", "--no-app", "--repeats", "1", "--json",
               "b.json", cwd=tmp_path)
    everything = json.loads((tmp_path / "b.json").read_text())
    assert "app" not in everything  # test_app_bench runs the app's part
    cli = everything["cli"]
    assert cli["edit_s"] > cli["seconds_total_inside"] > 0
    assert {"load", "search", "statistics", "execute", "measure", "verdict", "picture"} <= set(
        cli["phases"])
    assert "| command line | `edit eye-to-mouth.json`, statistics cached (wall) |" in done.stdout
    report = everything["dcgan-digiface"]
    assert report["search"]["requests"] == 1 and report["search"]["median"] > 0
    assert "| dcgan-digiface | per-request search, all four settings, 1 requests |" in done.stdout
    assert report["throughput_batch_1"]["images_per_second"] > 0
    assert report["throughput_batch_64"]["images_per_second"] > 0
    assert report["statistics"]["seconds"]["median"] > 0
    assert report["statistics"]["forward_to_layer_seconds"]["median"] > 0
    edit = report["edit"]
    for way in ("closed_form", "closed_form_paper_objective", "iterative", "paper_procedure",
                "paper_scaled_procedure"):
        assert 0 <= edit[way]["residual"] < 1.5 and edit[way]["seconds"]["median"] > 0
    assert edit["speedup_closed_form_vs_paper"] > 1
    assert report["memory"]["edit_delta_bytes"] < report["memory"]["model_parameter_bytes"]
    assert "| dcgan-digiface | paper procedure / closed form |" in done.stdout
    projection = report["projection"]
    assert projection["images"] == 2 and projection["seconds_per_image_mean"] > 0
    assert projection["psnr_mean"] > projection["psnr_mean_image_mean"]
    assert "| dcgan-digiface | projection of a held-out sample, 50 steps" in done.stdout


@pytest.mark.slow
def test_evaluate_writes_table_json_and_plot(tmp_path):
    requests = tmp_path / "requests"
    requests.mkdir()
    shutil.copy(ROOT / "examples" / "evaluation" / "1-eyes-to-mouth.json", requests)
    run("evaluate", "--requests", str(requests), "--out", "out", "--held-out", "16",
        "--finetune-steps", "3", cwd=tmp_path)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    methods = [row["method"] for row in results["rows"]]
    assert methods == ["auto", "rank-1", "rank-3", "dense", "finetune-all", "paper",
                       "paper-scaled"]
    # With the defaults: the request's verdict, as `edit` gives it.
    (verdict,) = results["sets"]["requests"]["verdicts"]
    assert verdict["request"] == "1-eyes-to-mouth" and isinstance(verdict["took"], bool)
    assert verdict["verdict"].startswith("The edit") and "random_floor" in verdict
    for row in results["rows"]:
        for key in ("efficacy", "generalization", "specificity", "residual", "change_inside",
                    "change_outside", "selectivity", "delta_norm_ratio", "seconds"):
            assert key in row
        assert set(row["random_floor"]) >= {"efficacy", "generalization", "specificity"}
    rank_one = results["rows"][1]
    assert rank_one["efficacy"] > rank_one["random_floor"]["efficacy"]
    # Curves: every method at every strength; the closed forms also over regularisation.
    assert {s["strength"] for s in results["curves"]["paper"]} == {0.5, 1.0, 1.5, 2.0, 3.0}
    assert len(results["curves"]["rank-1"]) == 15
    assert set(results["recommended"]) == set(methods) - {"auto"}  # auto has no curve
    assert "paper" in results["rank1_vs_paper_at_equal_specificity"]
    table = (tmp_path / "out" / "results.md").read_text()
    assert "### With the defaults" in table and "1-eyes-to-mouth" in table
    assert table.count("\n| ") == 3 + len(methods)  # two headers, the verdict, the methods
    assert Image.open(tmp_path / "out" / "rule_change.png").width > 1000


def _setting(reg: float, strength: float, generalization: float) -> dict:
    return {"regularization": reg, "strength": strength, "generalization": generalization,
            "specificity": 1.0 - 0.05 * strength}


def test_pick_is_the_generalisation_peak_at_the_default_regularisation():
    from rewriting.solve import DEFAULT_REGULARIZATION
    from rewriting_lab.evaluate import recommended

    points = ((1.0, 0.1), (2.0, 0.3), (3.0, 0.2))
    curve = [_setting(DEFAULT_REGULARIZATION, s, g) for s, g in points]
    # A higher value at another regularisation is not the default's curve.
    curve.append(_setting(1.0, 3.0, 0.9))
    pick = recommended({"rank-1": curve})["rank-1"]
    assert (pick["regularization"], pick["strength"]) == (DEFAULT_REGULARIZATION, 2.0)


def test_default_strength_is_the_published_evaluations_pick():
    from rewriting.rewrite import DEFAULT_STRENGTH
    from rewriting.solve import DEFAULT_REGULARIZATION

    results = json.loads((ROOT / "docs" / "evaluation" / "results.json").read_text())
    pick = results["recommended"]["rank-1"]
    assert pick["regularization"] == DEFAULT_REGULARIZATION
    assert pick["strength"] == DEFAULT_STRENGTH
    assert {row["strength"] for row in results["rows"] if row["method"] == "rank-1"} == {
        DEFAULT_STRENGTH}
