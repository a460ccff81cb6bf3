"""Bad input on the command line and in the library's loaders: one line, and nothing written.

The CLI runs in-process through `main(argv)` (a few real subprocesses prove the exit status).
Each case runs in a folder holding only its inputs; afterwards that folder and the statistics
cache must be exactly as before, and the shared model bit-identical.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bad_inputs import DELTAS, EXAMPLE, ROOT, masks, requests, write_good_delta
from refusals import one_line_error, refused
from safetensors.torch import save_file

from rewriting.delta import Delta, EditStack
from rewriting.limits import MAX_SAMPLES_PER_CALL, parse_samples
from rewriting.masks import mask_image
from rewriting.request import read_request
from rewriting.stats import STATS_SEED, cache_path, default_cache_dir, stats_identity
from rewriting_cli.main import main
from zoo.checkpoint import read_checkpoint
from zoo.loader import build_from_file

DATA = ROOT / "tests" / "data"
EDIT = ["edit", "good.json", "--out", "out"]
SAMPLE = ["sample", "--samples", "0-3", "--out", "g.png"]


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """The current folder for one case: a file, a folder and a good request, nothing else."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "afile").write_text("a file, not a folder\n")
    (folder / "adir").mkdir()
    (folder / "good.json").write_text(json.dumps(EXAMPLE))
    monkeypatch.chdir(folder)
    return folder


# ---- command-line options --------------------------------------------------------------------

COUNT = "must be an integer from"
ARGS = {
    "stats --samples -5": (["stats", "--samples", "-5"], COUNT),
    "stats --samples 0": (["stats", "--samples", "0"], COUNT),
    "stats --samples abc": (["stats", "--samples", "abc"], COUNT),
    "stats --samples 10001": (["stats", "--samples", "10001"], COUNT),
    "stats --samples 10**12": (["stats", "--samples", "1000000000000"], COUNT),
    "stats --samples 1.5": (["stats", "--samples", "1.5"], COUNT),
    "stats --layer unknown": (["stats", "--layer", "main.77"], "no rewritable layer"),
    "stats --truncation on dcgan": (["stats", "--truncation", "0.5"], "no truncation"),
    "stats --truncation nan": (["stats", "--truncation", "nan"], "no truncation"),
    "stats --out a folder": (["stats", "--samples", "10", "--out", "adir"], "is a folder"),
    "stats --out under a file": (["stats", "--out", "afile/c.safetensors"], "is a file"),
    "stats --model unknown": (["stats", "--model", "nope"], "unknown model"),
    "sample --samples 0-10**12": (["sample", "--samples", "0-1000000000000", "--out", "g.png"],
                                  "out of range"),
    "sample --samples 10**12": (["sample", "--samples", "1000000000000", "--out", "g.png"],
                                "out of range"),
    "sample --samples 100000": (["sample", "--samples", "100000", "--out", "g.png"],
                                "out of range"),
    "sample --samples 0-10000": (["sample", "--samples", "0-10000", "--out", "g.png"],
                                 "more than 10000 samples"),
    "sample --samples many ranges": (["sample", "--samples", "0-5000,0-5000", "--out", "g.png"],
                                     "more than 10000 samples"),
    "sample --samples abc": (["sample", "--samples", "abc", "--out", "g.png"], "bad sample list"),
    "sample --samples 3-1": (["sample", "--samples", "3-1", "--out", "g.png"], "first <= last"),
    "sample --samples -1": (["sample", "--samples", "-1", "--out", "g.png"], "bad sample list"),
    "sample --samples 0-": (["sample", "--samples", "0-", "--out", "g.png"], "bad sample list"),
    "sample --samples empty": (["sample", "--samples", "", "--out", "g.png"], "bad sample list"),
    "sample --samples 1,,2": (["sample", "--samples", "1,,2", "--out", "g.png"],
                              "bad sample list"),
    "sample --samples 1.5": (["sample", "--samples", "1.5", "--out", "g.png"], "bad sample list"),
    "sample --columns 0": ([*SAMPLE, "--columns", "0"], COUNT),
    "sample --columns -1": ([*SAMPLE, "--columns", "-1"], COUNT),
    "sample --columns abc": ([*SAMPLE, "--columns", "abc"], COUNT),
    "sample --scale 0": ([*SAMPLE, "--scale", "0"], COUNT),
    "sample --scale -2": ([*SAMPLE, "--scale", "-2"], COUNT),
    "sample --scale 17": ([*SAMPLE, "--scale", "17"], COUNT),
    "sample picture too big": (["sample", "--samples", "0-9999", "--scale", "16", "--out",
                                "g.png"], "picture would have"),
    "sample --out a folder": (["sample", "--out", "adir"], "is a folder"),
    "sample --out under a file": (["sample", "--out", "afile/g.png"], "is a file"),
    "sample --out deep under a file": (["sample", "--out", "afile/x/y/g.png"], "is a file"),
    "sample --out empty": (["sample", "--out", ""], "output path is empty"),
    "sample without --out": (["sample"], "give --out"),
    "sample --raw without checkpoint": (["sample", "--raw", "r.safetensors"], "--raw needs"),
    "sample --truncation on dcgan": ([*SAMPLE, "--truncation", "0.5"], "no truncation"),
    "sample --model unknown": ([*SAMPLE, "--model", "dcgan-digiface2"], "unknown model"),
    "sample --model empty": ([*SAMPLE, "--model", ""], "unknown model"),
    "sample --edit missing": ([*SAMPLE, "--edit", "missing.safetensors"], "cannot read delta"),
    "render --samples 0-10**12": (["render", "--samples", "0-1000000000000", "--out", "f"],
                                  "out of range"),
    "render --samples 0-10000": (["render", "--samples", "0-10000", "--out", "f"],
                                 "more than 10000"),
    "render --out a file": (["render", "--samples", "0-3", "--out", "afile"], "not a folder"),
    "render --out under a file": (["render", "--samples", "0-3", "--out", "afile/f"],
                                  "is a file"),
    "edit --stats-samples 0": ([*EDIT, "--stats-samples", "0"], COUNT),
    "edit --stats-samples -1": ([*EDIT, "--stats-samples", "-1"], COUNT),
    "edit --stats-samples abc": ([*EDIT, "--stats-samples", "abc"], COUNT),
    "edit --held-out 0": ([*EDIT, "--held-out", "0"], COUNT),
    "edit --held-out -1": ([*EDIT, "--held-out", "-1"], COUNT),
    "edit --held-out 10**9": ([*EDIT, "--held-out", "1000000000"], COUNT),
    "edit --scale 0": ([*EDIT, "--scale", "0"], COUNT),
    "edit --scale -2": ([*EDIT, "--scale", "-2"], COUNT),
    "edit --show 0": ([*EDIT, "--show", "0"], COUNT),
    "edit --show 65": ([*EDIT, "--show", "65"], COUNT),
    "edit --out a file": (["edit", "good.json", "--out", "afile"], "not a folder"),
    "edit --out under a file": (["edit", "good.json", "--out", "afile/out"], "is a file"),
    "edit --model unknown": ([*EDIT, "--model", "nope"], "unknown model"),
    "edit --layer unknown": ([*EDIT, "--layer", "main.77"], "no rewritable layer"),
    "edit --edit a folder": ([*EDIT, "--edit", "adir"], "cannot read delta"),
    "edit request a folder": (["edit", "adir", "--out", "out"], "is a folder, not a file"),
    "edit request missing": (["edit", "missing.json", "--out", "out"], "does not exist"),
    "edit request endless device": (["edit", "/dev/zero", "--out", "out"], "over the limit"),
    "edit request a file's child": (["edit", "afile/x.json", "--out", "out"], "cannot read"),
    "evaluate --held-out 0": (["evaluate", "--held-out", "0"], COUNT),
    "evaluate --finetune-steps 0": (["evaluate", "--finetune-steps", "0"], COUNT),
    "evaluate --requests a file": (["evaluate", "--requests", "afile"], "not a folder"),
    "evaluate --requests empty": (["evaluate", "--requests", "adir", "--out", "ev"],
                                  "no request files"),
    "evaluate --out a file": (["evaluate", "--out", "afile"], "not a folder"),
    "bench --repeats 0": (["bench", "--repeats", "0"], COUNT),
    "bench --json a folder": (["bench", "--json", "adir"], "is a folder"),
    "export --out a folder": (["export", "--edit", "x.safetensors", "--out", "adir"],
                              "is a folder"),
    "export --out under a file": (["export", "--edit", "x", "--out", "afile/m.safetensors"],
                                  "is a file"),
    "export without --edit": (["export", "--out", "m.safetensors"], "required"),
    "no command": ([], "required: command"),
    "unknown command": (["paint"], "invalid choice"),
    "unknown option": (["sample", "--colour", "red"], "unrecognized arguments"),
    "option without value": (["stats", "--samples"], "expected one argument"),
}


@pytest.mark.parametrize("name", list(ARGS))
def test_bad_options(name, work, capsys):
    argv, message = ARGS[name]
    refused(argv, message, capsys, work)


# ---- request files ---------------------------------------------------------------------------

REQUESTS = requests()


@pytest.mark.parametrize("name", list(REQUESTS))
def test_bad_request_files(name, work, capsys):
    text, message = REQUESTS[name]
    (work / "bad.json").write_text(text)
    refused(["edit", "bad.json", "--out", "out"], message, capsys, work)


PAPER = {"object": [1, EXAMPLE["copy"]["mask"]], "paste": [7, EXAMPLE["paste"]["mask"]],
         "key": [[7, EXAMPLE["paste"]["mask"]]]}
PAPER_REQUESTS = {
    "paper object of three": ({**PAPER, "object": [1, [0, 0, 8, 8], 3]}, "must be"),
    "paper 20000 keys": ({**PAPER, "key": PAPER["key"] * 20_000}, "the limit is 64"),
    "paper mask 10000x10000": (
        {**PAPER, "paste": [7, masks()["mask 10000x10000 png"][0]]}, "more than"),
}


@pytest.mark.parametrize("name", list(PAPER_REQUESTS))
def test_bad_paper_requests(name, work, capsys):
    data, message = PAPER_REQUESTS[name]
    (work / "paper.json").write_text(json.dumps(data))
    argv = ["edit", "paper.json", "--out", "out", "--model", "dcgan-digiface", "--layer", "main.6"]
    refused(argv, message, capsys, work)


def test_request_bytes_that_are_not_text(work, capsys):
    (work / "bad.json").write_bytes(b'{"model": "\xff\xfe"}')
    refused(["edit", "bad.json", "--out", "out"], "not valid JSON", capsys, work)


@pytest.mark.parametrize("name", ["nested lists 100000 deep", "over 4 MiB", "context 20000"])
def test_request_loader_refuses(name, tmp_path):
    text, message = REQUESTS[name]
    (tmp_path / "r.json").write_text(text)
    one_line_error(lambda: read_request(tmp_path / "r.json"), message)


# ---- delta files -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DELTAS))
def test_bad_deltas_on_the_command_line(name, work, capsys, dcgan):
    make, message = DELTAS[name]
    make(dcgan.weights_sha256, work / "bad.safetensors")
    refused([*SAMPLE, "--edit", "bad.safetensors"], message, capsys, work)


@pytest.mark.parametrize("name", ["lambda NaN", "lambda int64", "rank mismatch", "key axis 5",
                                  "lambda 1e30", "random payload bytes"])
def test_bad_deltas_are_not_exported_or_rendered(name, work, capsys, dcgan):
    make, message = DELTAS[name]
    make(dcgan.weights_sha256, work / "bad.safetensors")
    refused(["export", "--edit", "bad.safetensors", "--out", "m.safetensors"], message, capsys,
            work)
    refused(["render", "--samples", "0-3", "--edit", "bad.safetensors", "--out", "frames"],
            message, capsys, work)


@pytest.mark.parametrize("name", list(DELTAS))
def test_bad_deltas_leave_the_stack_and_model_alone(name, tmp_path, dcgan):
    """Delta.load + EditStack.push: refused with one line; the stack and the model unchanged."""
    make, message = DELTAS[name]
    good_tensors = _good(dcgan, tmp_path)
    stack = EditStack(dcgan, [good_tensors])
    weights = {k: v.clone() for k, v in stack.weights().items()}
    base = dcgan.parameter("main.6.weight").clone()
    make(dcgan.weights_sha256, tmp_path / "bad.safetensors")
    one_line_error(lambda: stack.push(Delta.load(tmp_path / "bad.safetensors")), message)
    assert stack.deltas == [good_tensors]
    assert all(torch.equal(stack.weights()[k], v) for k, v in weights.items())
    assert torch.equal(dcgan.parameter("main.6.weight"), base)


def _good(dcgan, folder: Path) -> Delta:
    """A plausible delta written and read back (the good case the bad ones are made from)."""
    write_good_delta(dcgan.weights_sha256, folder / "good.safetensors")
    return Delta.load(folder / "good.safetensors")


def test_the_good_delta_is_accepted(tmp_path, dcgan):
    """The bad deltas differ from this one in one way each; this one loads and stacks."""
    stack = EditStack(dcgan, [_good(dcgan, tmp_path)])
    assert stack.weights()["main.6.weight"].shape == (256, 128, 4, 4)


# ---- masks -----------------------------------------------------------------------------------

MASKS = masks()


@pytest.mark.parametrize("name", list(MASKS))
def test_bad_masks_in_the_library(name):
    spec, message = MASKS[name]
    one_line_error(lambda: mask_image(spec, (64, 64)), message)


# ---- latents and checkpoints (`sample --raw`) ------------------------------------------------


def _latents(tensors: dict[str, torch.Tensor] | None):
    def make(path: Path) -> None:
        if tensors is None:
            path.write_bytes(b"")
        else:
            save_file(tensors, str(path))

    return make


LATENT_SHAPE = "must have shape"
LATENTS = {
    "latents 1-D": (_latents({"z": torch.zeros(32)}), LATENT_SHAPE),
    "latents 3-D": (_latents({"z": torch.zeros(2, 32, 1)}), LATENT_SHAPE),
    "latents wrong width": (_latents({"z": torch.zeros(2, 31)}), LATENT_SHAPE),
    "latents no rows": (_latents({"z": torch.zeros(0, 32)}), LATENT_SHAPE),
    "latents too many rows": (_latents({"z": torch.zeros(MAX_SAMPLES_PER_CALL + 1, 32)}),
                              LATENT_SHAPE),
    "latents int64": (_latents({"z": torch.zeros(2, 32, dtype=torch.int64)}), "floating point"),
    "latents bool": (_latents({"z": torch.zeros(2, 32, dtype=torch.bool)}), "floating point"),
    "latents NaN": (_latents({"z": torch.full((2, 32), float("nan"))}), "NaN or infinite"),
    "latents Inf": (_latents({"z": torch.full((2, 32), float("inf"))}), "NaN or infinite"),
    "latents under another name": (_latents({"w": torch.zeros(2, 32)}), "cannot read latents"),
    "latents empty file": (_latents(None), "cannot read latents"),
}
RAW = ["sample", "--raw", "raw.safetensors", "--family", "proggan", "--latents", "z.safetensors"]


@pytest.mark.parametrize("name", list(LATENTS))
def test_bad_latents(name, work, capsys):
    make, message = LATENTS[name]
    make(work / "z.safetensors")
    refused([*RAW, "--checkpoint", DATA / "proggan_tiny.pth"], message, capsys, work)


class Payload:
    """Pickled, this would run code on load; the weights-only loader must refuse it."""

    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def _checkpoint(make_bytes):
    def make(path: Path) -> None:
        data = make_bytes()
        if data is None:
            path.mkdir()
        elif isinstance(data, bytes):
            path.write_bytes(data)
        else:
            torch.save(data, path)

    return make


UNREADABLE = "cannot read checkpoint"
CHECKPOINTS = {
    "checkpoint empty file": (_checkpoint(lambda: b""), UNREADABLE),
    "checkpoint empty dict": (_checkpoint(lambda: {}), "not a Progressive GAN checkpoint"),
    "checkpoint a tensor": (_checkpoint(lambda: torch.zeros(3)), "not a Progressive GAN"),
    "checkpoint text": (_checkpoint(lambda: b"hello"), "refusing|cannot read"),
    "checkpoint truncated": (_checkpoint(lambda: (DATA / "proggan_tiny.pth").read_bytes()[:999]),
                             UNREADABLE),
    "checkpoint a folder": (_checkpoint(lambda: None), "not a converted model"),
    "checkpoint with code": (_checkpoint(lambda: pickle.dumps(Payload())),
                             "refusing|cannot read"),
    "checkpoint of another family": (
        _checkpoint(lambda: (DATA / "stylegan2_tiny_g_ema.pt").read_bytes()),
        "not a Progressive GAN"),
}


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_bad_checkpoints(name, work, capsys):
    make, message = CHECKPOINTS[name]
    make(work / "ckpt.pth")
    save_file({"z": torch.zeros(2, 32)}, str(work / "z.safetensors"))
    refused([*RAW, "--checkpoint", "ckpt.pth"], message, capsys, work)
    one_line_error(lambda: build_from_file(work / "ckpt.pth", "proggan"), message)
    assert not (work / "pwned.txt").exists()


DCGAN_CHECKPOINTS = {
    "dcgan checkpoint 1-D weights": ({"main.0.weight": torch.zeros(3)},
                                     "no transposed convolution"),
    "dcgan checkpoint empty safetensors": ({}, "not a DCGAN checkpoint"),
}


@pytest.mark.parametrize("name", list(DCGAN_CHECKPOINTS))
def test_bad_dcgan_checkpoints(name, tmp_path):
    tensors, message = DCGAN_CHECKPOINTS[name]
    save_file(tensors, str(tmp_path / "c.safetensors"))
    one_line_error(lambda: build_from_file(tmp_path / "c.safetensors", "dcgan"), message)


def test_empty_checkpoint_gives_one_line_not_an_index_error(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    one_line_error(lambda: read_checkpoint(tmp_path / "empty.pt"), "corrupt, truncated")


def test_unknown_family(work, capsys):
    save_file({"z": torch.zeros(2, 32)}, str(work / "z.safetensors"))
    argv = ["sample", "--raw", "r.safetensors", "--family", "vqgan", "--latents", "z.safetensors",
            "--checkpoint", DATA / "proggan_tiny.pth"]
    refused(argv, "unknown generator family", capsys, work)


# ---- sample lists in the library -------------------------------------------------------------

SAMPLE_LISTS = {
    "list of 10**12": ("0-999999999999", "out of range"),
    "list over the cap": ("0-64", "more than 64"),
    "list not text": (5, "must be text"),
    "list of spaces": ("  ", "bad sample list"),
    "list hex": ("0x10", "bad sample list"),
}


@pytest.mark.parametrize("name", list(SAMPLE_LISTS))
def test_bad_sample_lists(name):
    text, message = SAMPLE_LISTS[name]
    one_line_error(lambda: parse_samples(text, 64), message)


# ---- a damaged statistics cache --------------------------------------------------------------

STATS_SAMPLES = 20


def _damaged(second_moment=None, key_sample=None, count="100"):
    def make(path: Path, meta: dict[str, str]) -> None:
        tensors = {
            "second_moment": torch.eye(256, dtype=torch.float64)
            if second_moment is None else second_moment,
            "key_sample": torch.ones(50, 256) if key_sample is None else key_sample,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata={**meta, "count": count})

    return make


STATS_CACHES = {
    "stats C NaN": _damaged(second_moment=torch.full((256, 256), torch.nan).double()),
    "stats C wrong shape": _damaged(second_moment=torch.eye(128, dtype=torch.float64)),
    "stats key sample Inf": _damaged(key_sample=torch.full((50, 256), float("inf"))),
    "stats key sample wrong shape": _damaged(key_sample=torch.ones(50, 3)),
    "stats count zero": _damaged(count="0"),
}


@pytest.mark.parametrize("name", list(STATS_CACHES))
def test_damaged_statistics_cache_is_reported_or_recomputed(name, work, capsys, dcgan,
                                                             monkeypatch):
    """Either the cache is refused with one line (nothing written) or recomputed and used."""
    monkeypatch.setenv("REWRITING_CACHE", str(work.parent / "cache"))
    meta = stats_identity(dcgan, dcgan.layer("main.6"), None, STATS_SAMPLES, STATS_SEED)
    path = cache_path(default_cache_dir(), meta)
    STATS_CACHES[name](path, meta)
    argv = [*EDIT, "--stats-samples", STATS_SAMPLES, "--held-out", 4, "--show", 2]
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    if status == 2:
        assert len(err.strip().splitlines()) == 1 and "key statistics" in err, err
        assert not (work / "out").exists()
    else:
        assert status == 0, err
        metrics = json.loads((work / "out" / "metrics.json").read_text())
        assert 0 <= metrics["residual"] < 1


# ---- real processes: the exit status ---------------------------------------------------------

PROCESSES = {
    "stats --samples -5": ["stats", "--samples", "-5"],
    "request a folder": ["edit", ".", "--out", "out"],
    "sample --samples 0-10**12": ["sample", "--samples", "0-1000000000000", "--out", "g.png"],
    "request nested 100000 deep": ["edit", "deep.json", "--out", "out"],
}


@pytest.mark.slow
def test_exit_status_in_real_processes(tmp_path):
    """The in-process runs above stand for real ones: these exit 2 with one line, all at once."""
    (tmp_path / "deep.json").write_text(REQUESTS["nested lists 100000 deep"][0])
    before = sorted(os.listdir(tmp_path))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    running = {
        name: subprocess.Popen([sys.executable, "-m", "rewriting", *argv], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, argv in PROCESSES.items()
    }
    for name, process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 2, (name, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), (name, err)
    assert sorted(os.listdir(tmp_path)) == before
