"""A real portrait (scikit-image's astronaut) through the app's "Your photo" panel in Chromium:
upload, projection, the reconstruction under the original and the edited model, and the photo
as the paste and a context sample of a new edit.

The screenshot goes to tests/artifacts/app-photo.png.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import skimage.data
import test_app_browser
from app_server import app_log
from PIL import Image

from rewriting.photo import default_crop, prepare
from rewriting.quality import psnr
from zoo.registry import model_entry

SHOWN = 256  # the panel enlarges the 64 px reconstructions to this side
ARTIFACTS = test_app_browser.ARTIFACTS
app = test_app_browser.app  # the app and a Chromium, as the other browser tests drive them
page = test_app_browser.page


def settled(tab, editor: str) -> None:
    """Wait until a brush canvas has finished loading or uploading."""
    tab.wait_for_function(
        f"!document.querySelector('#{editor}').innerText.includes('processing')"
    )
    tab.wait_for_timeout(200)


def brush(tab, box: tuple[int, int, int, int], editor: str) -> None:
    """Paint the box (canvas pixels) of the photo's brush canvas with horizontal strokes."""
    zoom = float(re.search(r"(\d+)%", tab.inner_text(f"#{editor}")).group(1)) / 100
    frame = tab.query_selector(f"#{editor} canvas").bounding_box()
    cx, cy = frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2
    top, left, bottom, right = box
    side = test_app_browser.CELL

    def at(x: float, y: float) -> tuple[float, float]:
        return cx + (x - side / 2) * zoom, cy + (y - side / 2) * zoom

    for y in range(top + 12, bottom - 8, 20):
        tab.mouse.move(*at(left + 8, y))
        tab.mouse.down()
        tab.mouse.move(*at(right - 8, y), steps=5)
        tab.mouse.up()
    settled(tab, editor)


def picture(tab, elem_id: str) -> np.ndarray:
    """The image an Image component shows, at the model's 64 px (the panel enlarges 4x)."""
    src = tab.get_attribute(f"#{elem_id} img", "src")
    body = tab.request.get(src).body()
    image = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
    assert image.shape == (SHOWN, SHOWN, 3)
    return image[::4, ::4]


@pytest.mark.slow
def test_portrait_projected_and_shown_under_the_edit(page, tmp_path):
    tab, folder = page
    tab.set_default_timeout(300_000)  # the shared 2-core machine can be slow
    ARTIFACTS.mkdir(exist_ok=True)
    photo_path = tmp_path / "astronaut.png"
    photo = Image.fromarray(skimage.data.astronaut())
    photo.save(photo_path)
    try:
        # An edit first: the example that opens mouths.
        tab.click("#example-1")  # loads and executes it
        tab.wait_for_function("document.querySelector('#result')?.innerText.includes('applied')")

        tab.get_by_text("Your photo", exact=True).click()
        tab.click("#photo-project")  # nothing uploaded yet: a message, nothing shown
        test_app_browser.shows(tab, "upload a photo first")
        assert tab.query_selector("#photo-original img") is None

        tab.set_input_files("#photo-upload input[type=file]", str(photo_path))
        tab.wait_for_selector("#photo-upload img")
        # A long projection, cancelled: nothing is shown, and the panel works on.
        tab.locator("#photo-steps input").fill("2000")
        tab.click("#photo-project")
        tab.wait_for_timeout(3000)
        tab.click("#photo-cancel")
        tab.wait_for_timeout(1000)
        assert "PSNR" not in tab.inner_text("#photo-info")
        assert tab.query_selector("#photo-original img") is None

        tab.locator("#photo-steps input").fill("60")
        tab.click("#photo-project")
        tab.wait_for_function(
            "document.querySelector('#photo-info').innerText.includes('PSNR')"
        )
        tab.wait_for_selector("#photo-edited img")
        tab.screenshot(path=str(ARTIFACTS / "app-photo.png"), full_page=True)

        info = tab.inner_text("#photo-info")
        shown_psnr, mean_psnr = (float(x) for x in re.findall(r"PSNR ([\d.]+) dB", info)
                                 + re.findall(r"mean image: ([\d.]+) dB", info))
        # No crop given: the default for a face model frames the detected face.
        crop, how = default_crop(photo, model_entry("dcgan-digiface").face_framing)
        assert f"(crop {crop}, {how})" in info and how == "around the detected face", info
        assert tab.query_selector("#photo-crop img") is not None
        target = prepare(photo, (64, 64), crop)
        original, edited = picture(tab, "photo-original"), picture(tab, "photo-edited")
        measured = float(psnr(original[None], target[None]))
        # The picture shown is the reconstruction the figures describe, and it beats the
        # model's mean face by a wide margin.
        assert abs(measured - shown_psnr) < 0.01, (measured, shown_psnr)
        assert measured > mean_psnr + 4, (measured, mean_psnr)
        # The edited model renders the same latent differently.
        assert np.abs(edited.astype(float) - original).mean() > 0.5

        # Reverting the edit re-renders the photo: both sides are then the original model's.
        tab.click("#revert")
        tab.wait_for_function("document.querySelector('#history').innerText.includes('No edits')")
        tab.wait_for_function(
            "() => { const a = document.querySelector('#photo-original img'),"
            " b = document.querySelector('#photo-edited img'); return a && b && a.src === b.src; }"
        )
        assert np.array_equal(picture(tab, "photo-edited"), original)

        # The photo as the paste and a context sample, eyes copied from sample 1: an edit.
        test_app_browser.show_tab(tab, "What you marked")
        tab.click("#clear")
        tab.wait_for_function("document.querySelectorAll('#tray img').length === 0")
        tab.locator("#photo-editor").scroll_into_view_if_needed()
        brush(tab, test_app_browser.MOUTH, "photo-editor")
        tab.click("#photo-use-paste")
        tab.wait_for_selector("#pasted img")
        tab.click("#photo-add-context")
        tab.wait_for_function("document.querySelector('#tray')?.innerText.includes('#photo')")
        tab.locator("#mode").get_by_text("What to copy").click()
        tab.locator("#paint").scroll_into_view_if_needed()
        test_app_browser.paint(tab, 1, test_app_browser.EYES, "copy")
        tab.wait_for_selector("#copied img")
        tab.click("#execute")
        tab.wait_for_function(
            "document.querySelector('#result')?.innerText.includes('Edit 1 applied')")
        assert "copy #1 → paste #photo, 1 context" in tab.inner_text("#history")
        tab.wait_for_function(
            "() => { const a = document.querySelector('#photo-original img'),"
            " b = document.querySelector('#photo-edited img'); return a && b && a.src !== b.src; }"
        )
        tab.locator("#photo-editor").scroll_into_view_if_needed()
        tab.screenshot(path=str(ARTIFACTS / "app-photo-paste.png"), full_page=True)
        pasted = np.abs(picture(tab, "photo-edited").astype(float) - original)
        assert pasted[40:56, 16:48].mean() > pasted.mean(), "the photo's mouth did not change most"
    except Exception:
        tab.screenshot(path=str(ARTIFACTS / "app-photo-failure.png"), full_page=True)
        print(app_log(folder))
        raise
