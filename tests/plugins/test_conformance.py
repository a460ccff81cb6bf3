"""`check-plugin`: every built-in family keeps the engine's contracts; broken plugins fail them
with the reason that names what is broken."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from broken_plugins import (
    CORRECT,
    NONDETERMINISTIC,
    WEIGHTS,
    WRONG_KEY_GRID,
    WRONG_TAIL,
    WRONG_VALUE,
)

import plugins
from rewriting_cli.main import main
from zoo import loader, registry
from zoo.conformance import assert_conforms, check_plugin

DATA = Path(__file__).parents[1] / "data"
#: Every built-in family and the checkpoint it is checked on (None: its first catalog model).
FAMILIES = {
    "dcgan": None,
    "stylegan2": DATA / "stylegan2_tiny_g_ema.pt",
    "proggan": DATA / "proggan_tiny.pth",
    "stylegan2-ada": DATA / "sg2ada_tiny.pkl",
    "stylegan3": DATA / "sg3_tiny_t.pkl",
}


def test_every_built_in_family_is_checked():
    built_in = {name for name, p in registry.all_plugins().items()
                if p.build.__module__.startswith(plugins.__name__ + ".")}
    assert built_in == set(FAMILIES)


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.slow
def test_built_in_family_keeps_every_contract(family):
    checks = assert_conforms(family, FAMILIES[family])
    names = [c.name for c in checks]
    generator = loader.build_from_file(FAMILIES[family], family) if FAMILIES[family] else None
    layers = list(generator.layers) if generator else ["main.0", "main.3", "main.6", "main.9",
                                                       "main.12"]
    for layer in layers:  # each declared layer is checked, not only the default
        assert {f"layer {layer}: grids", f"layer {layer}: rewrite_value",
                f"layer {layer}: edit"} <= set(names)
        # The families that resume after a layer have that checked too.
        assert (f"layer {layer}: tail" in names) == (family in ("dcgan", "proggan"))
    assert {"deterministic", "batch independent", "truncation", "class labels",
            "revert restores the images", "shared network untouched"} <= set(names)


def failures(plugin) -> dict[str, str]:
    return {c.name: c.reason for c in check_plugin(plugin, WEIGHTS) if not c.passed}


def test_the_unbroken_tiny_plugin_passes():
    assert failures(CORRECT) == {}
    checks = check_plugin(CORRECT)  # no checkpoint: its first catalog entry
    assert checks[0].name == "builds" and all(c.passed for c in checks)


def test_a_wrong_key_grid_fails_the_grid_check_naming_both_grids():
    failed = failures(WRONG_KEY_GRID)
    assert list(failed) == ["layer up: grids"]
    assert failed["layer up: grids"] == (
        "keys are 16 channels on 4x4, the layer declares 16 on 2x2"
    )


def test_a_nondeterministic_sampler_fails_numbering_and_determinism():
    failed = failures(NONDETERMINISTIC)
    assert set(failed) == {"sample numbering", "deterministic", "batch independent"}
    assert "not deterministic" in failed["deterministic"]
    assert "paper_latents" in failed["sample numbering"]
    assert not any(name.startswith("layer ") for name in failed)


def test_a_rewrite_value_that_disagrees_with_the_forward_pass_fails():
    failed = failures(WRONG_VALUE)
    assert set(failed) == {"layer up: rewrite_value", "layer up: edit"}
    assert failed["layer up: rewrite_value"].startswith(
        "rewrite_value disagrees with the forward pass (relative difference"
    )


def test_a_tail_that_skips_part_of_the_network_fails():
    failed = failures(WRONG_TAIL)
    assert list(failed) == ["layer up: tail"]
    assert failed["layer up: tail"].startswith(
        "unedited, the render resumed after up by tail() differs from the render from the latents"
    )


def test_the_command_prints_the_table_and_exits_1_on_a_failure(monkeypatch, capsys):
    known = {**registry.all_plugins(), WRONG_VALUE.family: WRONG_VALUE}
    monkeypatch.setattr(registry, "all_plugins", lambda: known)
    assert main(["check-plugin", WRONG_VALUE.family, "--checkpoint", str(WEIGHTS)]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("layer up: rewrite_value"))
    assert "FAIL" in line and "disagrees with the forward pass" in line
    assert "2 fail" in out.splitlines()[-1]

    assert main(["check-plugin", "dcgan", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "30 of 30 contracts hold"
    assert out[2].split() == ["device", "cpu:", "tensors", "stay", "there", "ok"]


def test_a_device_that_is_not_there_is_refused_before_building(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["check-plugin", "dcgan", "--device", "cuda"]) == 2
    assert capsys.readouterr().err.startswith("error: device cuda is not available here")


def test_bad_input_is_one_line_and_status_2(capsys, tmp_path):
    assert main(["check-plugin", "dcgam"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean dcgan" in err
    assert main(["check-plugin", "dcgan", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
