"""Projection of photos into generators: metrics, latent spaces, recovery, files and the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from edits import random_delta
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from rewriting.delta import Delta, EditStack
from rewriting.errors import RewritingError
from rewriting.metrics import held_out_samples
from rewriting.photo import Crop, centred_crop, prepare
from rewriting.project import load_latent, mean_image, project, render_latent
from rewriting.quality import psnr, ssim
from rewriting.render import render
from rewriting_cli.main import main
from zoo.loader import build_from_file

DATA = Path(__file__).parents[1] / "data"


def run(*args: str, cwd: Path) -> Done:
    """The CLI's main() in `cwd` (in this process, to keep the tests fast)."""
    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(before)
    return Done(code, out.getvalue(), err.getvalue())


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def test_psnr_and_ssim_agree_with_scikit_image():
    rng = np.random.default_rng(0)
    a = skimage.data.astronaut()[100:164, 180:244]
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    ours = float(psnr(a[None], b[None]))
    assert ours == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)
    unit = [torch.from_numpy(x).permute(2, 0, 1)[None].double() / 255 for x in (a, b)]
    reference = structural_similarity(
        a / 255, b / 255, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False,
    )
    assert float(ssim(*unit)) == pytest.approx(reference, abs=1e-9)
    assert float(ssim(unit[0], unit[0])) == pytest.approx(1.0)


def test_photo_crop_is_centred_and_resized():
    photo = Image.fromarray(skimage.data.astronaut()).crop((0, 0, 512, 300))
    assert centred_crop(photo) == Crop(106, 0, 300)
    target = prepare(photo, (64, 64))
    assert target.shape == (64, 64, 3) and target.dtype == np.uint8
    with pytest.raises(RewritingError, match="not a square of at least 8 px inside"):
        prepare(photo, (64, 64), Crop(400, 0, 200))


@pytest.mark.parametrize("family, file", [
    ("stylegan2", "stylegan2_tiny_g_ema.pt"), ("stylegan2-ada", "sg2ada_tiny.pkl"),
    ("stylegan3", "sg3_tiny_t.pkl"),
])
def test_w_plus_latents_render_the_samples(family, file):
    """Each StyleGAN family declares w+ and its noise maps; a sample's w+ gives the sample."""
    g = build_from_file(DATA / file, family)
    space = g.latent_space()
    assert space.kind == "w" and len(space.shape) == 2
    assert (len(space.noise) > 0) == (family != "stylegan3")
    z = g.latents([3, 5])
    latent = g.to_latent(z, 0.7)
    assert latent.shape == (2, *space.shape)
    assert torch.equal(g.from_latent(latent, g.net), g.synthesize(z, 0.7))


@pytest.mark.slow
def test_held_out_dcgan_samples_projected_far_above_the_mean_face(dcgan):
    """Generated samples never used as starting points come back well above the trivial
    baseline (the model's mean image), and the search is deterministic."""
    number = held_out_samples(1)[0]
    image = render(dcgan, [number])[0]
    found = project(dcgan, image.numpy(), steps=60, starts=2)
    m = found.metrics
    assert m["psnr"] > m["psnr_mean_image"] + 6, m
    assert m["ssim"] > m["ssim_mean_image"] + 0.15, m
    shown = render_latent(dcgan, found)
    assert np.array_equal(shown[0].numpy(), found.reconstruction)
    assert m["psnr"] == pytest.approx(float(psnr(shown, image[None])))
    short = [project(dcgan, image.numpy(), steps=5, starts=2).latent for _ in range(2)]
    assert torch.equal(*short)


def test_mean_image_is_the_average_of_samples(dcgan):
    mean = mean_image(dcgan, samples=32)
    expected = render(dcgan, range(32)).double().mean(0).round().to(torch.uint8)
    assert torch.equal(mean, expected)


@pytest.mark.slow
def test_stylegan2_recovers_a_known_w():
    """On the StyleGAN2 test vectors, a sample rendered from a known w is projected (one w for
    every layer) back to within a small fraction of the spread of w over samples."""
    g = build_from_file(DATA / "stylegan2_tiny_g_ema.pt", "stylegan2")
    truth = g.to_latent(g.latents([4321]), 0.5)
    image = g.to_image(g.from_latent(truth, g.net))[0].numpy()
    found = project(g, image, steps=100, starts=2, per_layer=False)
    spread = g.to_latent(g.latents(range(500)), 0.5)
    spread = float((spread - spread.mean(0)).flatten(1).norm(dim=1).mean())
    error = float((found.latent - truth).norm())
    assert error < 0.25 * spread, (error, spread)
    assert found.metrics["psnr"] > 28


def test_w_plus_projection_fits_noise_and_renders_under_an_edit(tmp_path):
    g = build_from_file(DATA / "stylegan2_tiny_g_ema.pt", "stylegan2")
    image = g.to_image(g.synthesize(g.latents([77]), 0.5))[0].numpy()
    found = project(g, image, steps=20, starts=2)
    assert set(found.noise) == set(g.latent_space().noise)
    assert any(not torch.equal(v, g.net.get_buffer(k)) for k, v in found.noise.items())
    found.save(tmp_path / "latent.safetensors")
    loaded = load_latent(tmp_path / "latent.safetensors", g)
    assert np.array_equal(render_latent(g, loaded)[0].numpy(), found.reconstruction)
    stack = EditStack(g, [random_delta(g, g.default_layer, seed=1)])
    edited = render_latent(g, loaded, stack.weights())
    assert np.abs(edited[0].numpy().astype(float) - found.reconstruction).mean() > 1
    # Nothing shared was changed: the base network still renders the sample as before.
    assert np.array_equal(g.to_image(g.synthesize(g.latents([77]), 0.5))[0].numpy(), image)


def test_latent_of_another_model_is_refused(dcgan, tmp_path):
    g = build_from_file(DATA / "stylegan2_tiny_g_ema.pt", "stylegan2")
    image = g.to_image(g.synthesize(g.latents([1]), 0.5))[0].numpy()
    project(g, image, steps=2, starts=1).save(tmp_path / "sg2.safetensors")
    with pytest.raises(RewritingError, match="projected into 'stylegan2_tiny_g_ema'"):
        load_latent(tmp_path / "sg2.safetensors", dcgan)


def test_cli_project_then_sample_under_an_edit(dcgan, tmp_path):
    photo = tmp_path / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(photo)
    done = run("project", str(photo), "--crop", "155,40,140", "--steps", "30", "--starts", "2",
               "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    names = {"latent.safetensors", "reconstruction.png", "target.png", "crop.png", "metrics.json"}
    assert {p.name for p in out.iterdir()} == names
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"psnr", "ssim", "psnr_mean_image", "seconds"} <= set(metrics)
    assert metrics["crop"] == "155,40,140" and metrics["psnr"] > metrics["psnr_mean_image"]
    target = np.asarray(Image.open(out / "target.png"))
    reconstruction = np.asarray(Image.open(out / "reconstruction.png"))
    assert metrics["psnr"] == pytest.approx(float(psnr(reconstruction[None], target[None])))

    random_delta(dcgan, "main.6", seed=2).save(tmp_path / "d.safetensors")
    done = run("sample", "--latents", "out/latent.safetensors", "--scale", "1", "--out",
               "plain.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "plain.png"))[2:66, 2:66],
                          reconstruction)
    done = run("sample", "--latents", "out/latent.safetensors", "--edit", "d.safetensors",
               "--scale", "1", "--out", "edited.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    edited = np.asarray(Image.open(tmp_path / "edited.png"))[2:66, 2:66]
    assert np.abs(edited.astype(float) - reconstruction).mean() > 1


@pytest.mark.parametrize("args, message", [
    (["missing.png"], "photo missing.png does not exist"),
    (["notes.txt"], "cannot read the photo"),
    (["photo.png", "--crop", "0,0,600"], "is not a square of at least 8 px inside"),
    (["photo.png", "--steps", "0"], "must be an integer from 1"),
])
def test_cli_project_bad_input_writes_nothing(tmp_path, args, message):
    Image.new("RGB", (100, 80)).save(tmp_path / "photo.png")
    (tmp_path / "notes.txt").write_text("not an image")
    done = run("project", *args, "--out", "out", cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_sample_refuses_a_file_that_is_not_a_latent(tmp_path):
    delta = Delta("main.6", "main.6.weight", 0, torch.zeros(1, 128, 4, 4), torch.zeros(1, 256),
                  "dcgan-digiface", "0" * 64)
    delta.save(tmp_path / "delta.safetensors")
    done = run("sample", "--latents", "delta.safetensors", "--out", "g.png", cwd=tmp_path)
    assert done.returncode == 2 and "is not a latent file written by `project`" in done.stderr
    assert not (tmp_path / "g.png").exists()


def test_cli_project_eval_reports_samples_photo_and_edit_effect(dcgan, tmp_path):
    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "photo.png")
    random_delta(dcgan, "main.6", seed=3).save(tmp_path / "d.safetensors")
    done = run("project-eval", "--samples", "1", "--steps", "5", "--photo", "photo.png",
               "--crop", "155,40,140", "--edit", "d.safetensors", "--out", "e.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["summary"]["images"] == 1 and report["held_out_samples"] == [1000]
    assert report["photos"][0]["crop"] == "155,40,140"
    assert report["photos"][0]["crop_chosen"] == "given"
    effect = report["edit_effect"]
    assert effect["change_projected_photos"] > 0 and effect["change_generated_samples"] > 0
    done = run("project-eval", "--photo", "photo.png", "--crop", "1,1,20", "--crop", "1,1,30",
               "--out", "f.json", cwd=tmp_path)
    assert done.returncode == 2 and "one --crop per --photo" in done.stderr
    assert not (tmp_path / "f.json").exists()


def test_progress_is_told_each_step_and_can_stop_the_search(dcgan):
    image = render(dcgan, [5])[0].numpy()
    told = []

    def stop_at_three(done: int, total: int) -> None:
        told.append((done, total))
        if done == 3:
            raise RewritingError("cancelled")

    with pytest.raises(RewritingError, match="cancelled"):
        project(dcgan, image, steps=10, starts=2, progress=stop_at_three)
    assert told == [(1, 10), (2, 10), (3, 10)]
