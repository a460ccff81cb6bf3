"""The default crop of a photo for a face model: around the detected face, framed like the
model's training faces; the centred square when no face is found."""

from __future__ import annotations

import json

import pytest
import skimage.data
from PIL import Image
from test_project import run

from rewriting.photo import Crop, centred_crop, default_crop, prepare
from rewriting.project import project

#: A point between the astronaut's eyes and mouth (scikit-image's 512x512 portrait).
ASTRONAUT_NOSE = (222, 110)


@pytest.mark.slow
def test_face_crop_contains_the_face_and_projects_better_than_the_centred_square(dcgan):
    photo = Image.fromarray(skimage.data.astronaut())
    crop, how = default_crop(photo, dcgan.face_framing)
    assert how == "around the detected face"
    x, y = ASTRONAUT_NOSE
    assert crop.left < x < crop.left + crop.side and crop.top < y < crop.top + crop.side, crop
    assert 90 <= crop.side <= 200, crop
    found = {name: project(dcgan, prepare(photo, dcgan.image_size, c), steps=60, starts=2)
             for name, c in (("face", crop), ("centred", centred_crop(photo)))}
    assert found["face"].metrics["psnr"] > found["centred"].metrics["psnr"] + 1, {
        k: v.metrics["psnr"] for k, v in found.items()}


def test_photo_without_a_face_or_model_without_framing_gets_the_centred_square(dcgan):
    photo = Image.fromarray(skimage.data.coffee())
    assert default_crop(photo, dcgan.face_framing) == (
        centred_crop(photo), "no face found: centred square")
    portrait = Image.fromarray(skimage.data.astronaut())
    assert default_crop(portrait, None) == (Crop(0, 0, 512), "centred square")


def test_cli_project_says_how_the_crop_was_chosen(tmp_path):
    Image.fromarray(skimage.data.coffee()).save(tmp_path / "coffee.png")
    done = run("project", "coffee.png", "--steps", "2", "--starts", "1", "--out", "out",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no face found: centred square" in done.stdout
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["crop"] == "100,0,400"
    assert metrics["crop_chosen"] == "no face found: centred square"
