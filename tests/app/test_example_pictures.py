"""Each example button's picture: the copied part beside the goal, a small PNG made once."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rewriting.limits import read_json_file
from rewriting.masks import mask_image
from rewriting_app import session as ss
from rewriting_app.example_pictures import example_thumbnail
from rewriting_app.settings import EMBEDDED_MODEL, EXAMPLE_GAP_PX, EXAMPLES, EXAMPLES_DIR

ARTIFACTS = Path(__file__).parents[1] / "artifacts"


@pytest.mark.parametrize("name", list(EXAMPLES.values()))
def test_each_example_has_a_small_picture_of_what_it_does(name, dcgan):
    path = example_thumbnail(EXAMPLES_DIR / name)
    assert path.suffix == ".png" and example_thumbnail(EXAMPLES_DIR / name) == path  # made once
    picture = Image.open(path)
    side = dcgan.image_size[0]
    assert picture.format == "PNG" and picture.mode == "RGBA"
    assert picture.size == (2 * side + EXAMPLE_GAP_PX, side)
    pixels = np.asarray(picture)
    session, _ = ss.Session.start(EMBEDDED_MODEL).loaded(
        read_json_file(EXAMPLES_DIR / name, "example"))
    # Right: the goal, as the brush's preview shows it; between: a transparent gap.
    assert np.array_equal(pixels[:, -side:, :3], ss.paste_preview(session))
    assert (pixels[:, side:side + EXAMPLE_GAP_PX, 3] == 0).all()
    assert (pixels[:, :side, 3] == 255).all() and (pixels[:, -side:, 3] == 255).all()
    # Left: the copy sample, lit where the part is copied and dimmed elsewhere.
    copied = ss.samples(session, [session.copy.sample])[0].astype(float)
    cover = mask_image(session.copy.mask, dcgan.image_size, session.copy.paper).numpy()
    left = pixels[:, :side, :3].astype(float)
    inside, outside = cover > 0.99, cover < 0.01
    assert np.abs(left[inside] - copied[inside]).max() <= 1
    assert left[outside].mean() < 0.5 * copied[outside].mean()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / f"example-picture-{Path(name).stem}.png")
