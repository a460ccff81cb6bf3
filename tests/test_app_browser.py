"""The app in a real browser: brush copy, paste and context with the mouse, execute, revert.

Needs Debian's Chromium at /usr/bin/chromium and the `playwright` package (no browser download).
Screenshots of the page before and after the edit go to tests/artifacts/.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from app_server import app_log, running_app
from PIL import Image
from playwright import sync_api as playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"

CANVAS = 256  # the app's canvas side; samples are 64 px, so one sample pixel is 4 canvas px
EYES = (96, 64, 160, 192)  # top, left, bottom, right on the canvas (the request's [24,16,40,48])
MOUTH = (160, 64, 224, 192)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    with running_app(folder) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(60_000)
        tab.goto(url)
        tab.wait_for_selector("#gallery button.thumbnail-item img")
        try:
            yield tab, folder
        finally:
            browser.close()


def thumbnails(tab, gallery: str = "#gallery") -> list[str]:
    return [img.get_attribute("src") for img in tab.query_selector_all(f"{gallery} img")]


def images(tab, changed_from: list[str] | None = None) -> np.ndarray:
    """The gallery's pictures, after its pictures differ from `changed_from` when given."""
    if changed_from is not None:
        tab.wait_for_function(
            "old => { const s = [...document.querySelectorAll('#gallery img')].map(i => i.src);"
            " return s.length === old.length && s.some((x, i) => x !== old[i]); }",
            arg=changed_from,
        )
    pictures = []
    for src in thumbnails(tab):
        body = tab.request.get(src).body()
        pictures.append(np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), np.int16))
    return np.stack(pictures)


def open_sample(tab, index: int) -> None:
    tab.query_selector_all("#gallery button.thumbnail-item")[index].click()
    tab.wait_for_function(f"document.body.innerText.includes('Sample #{index}:')")
    settled(tab)


def settled(tab) -> None:
    """Wait until the brush canvas has finished loading or uploading."""
    tab.wait_for_function(
        "!document.querySelector('#editor').innerText.includes('processing')"
    )
    tab.wait_for_timeout(200)


def brush(tab, box: tuple[int, int, int, int]) -> None:
    """Paint the canvas box (canvas pixels) with horizontal mouse strokes."""
    zoom = float(re.search(r"(\d+)%", tab.inner_text("#editor")).group(1)) / 100
    frame = tab.query_selector("#editor canvas").bounding_box()
    cx, cy = frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2
    top, left, bottom, right = box

    def at(x: float, y: float) -> tuple[float, float]:
        return cx + (x - CANVAS / 2) * zoom, cy + (y - CANVAS / 2) * zoom

    for y in range(top + 12, bottom - 8, 20):
        tab.mouse.move(*at(left + 8, y))
        tab.mouse.down()
        tab.mouse.move(*at(right - 8, y), steps=5)
        tab.mouse.up()
    settled(tab)


def press(tab, elem_id: str, then: str) -> None:
    """Click a button and wait until the page shows `then` (a CSS selector)."""
    tab.click(f"#{elem_id}")
    tab.wait_for_selector(then)
    settled(tab)


def recorded(page, name: str, steps) -> None:
    """Run `steps(tab)`; when it fails, keep a screenshot `{name}-failure.png` and the app's log."""
    tab, folder = page
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        steps(tab)
    except Exception:
        tab.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
        print(app_log(folder))
        raise


def test_copy_paste_context_execute_revert(page):
    recorded(page, "app", edit_cycle)


def edit_cycle(tab) -> None:
    """The whole cycle with the mouse, checking what the page shows at each step."""
    tab.screenshot(path=str(ARTIFACTS / "app-before.png"), full_page=True)
    original = images(tab)
    assert original.shape[0] == 24

    # Bad input: Execute with nothing selected says why and changes nothing.
    tab.click("#execute")
    tab.get_by_text("nothing to paste").first.wait_for()
    assert "No edits yet" in tab.inner_text("#history")

    open_sample(tab, 1)
    brush(tab, EYES)
    press(tab, "copy", "#copied img")
    open_sample(tab, 7)
    brush(tab, MOUTH)
    press(tab, "paste", "#preview img")
    press(tab, "context-add", "#tray img")  # the same stroke is also a context example
    open_sample(tab, 12)
    brush(tab, MOUTH)
    tab.click("#context-add")
    tab.wait_for_function("document.querySelectorAll('#tray img').length === 2")

    before_execute = thumbnails(tab)
    tab.click("#execute")
    tab.wait_for_function(
        "document.querySelector('#result').innerText.includes('Edit 1 applied')"
    )
    edited = images(tab, before_execute)
    tab.wait_for_selector("#after img")
    tab.screenshot(path=str(ARTIFACTS / "app-after.png"), full_page=True)
    assert "copy #1" in tab.inner_text("#history")

    change = np.abs(edited - original).mean(-1)
    assert change.mean() > 0.5, "the edited gallery looks like the original"

    # Where the context key fires: the highlight tints exactly those pixels of the original.
    tab.get_by_label("Original").check()
    assert np.array_equal(images(tab, thumbnails(tab)), original)
    shown = thumbnails(tab)
    tab.get_by_label("Highlight context matches").check()
    fires = np.abs(images(tab, shown) - original).max(-1) > 8
    assert 0 < fires.mean() < 0.3
    inside, outside = change[fires].mean(), change[~fires].mean()
    assert inside > 2 * outside, (inside, outside)

    # Revert the edit: the model is the original again.
    tab.get_by_label("Highlight context matches").uncheck()
    tab.get_by_label("Edited").check()
    tab.wait_for_timeout(500)
    tab.click("#revert")
    tab.wait_for_function("document.querySelector('#history').innerText.includes('No edits')")
    tab.wait_for_timeout(500)
    assert np.array_equal(images(tab), original)


def test_bad_numbers_in_the_page_get_a_message_not_error_badges(page):
    """A page of -1, a sample of -5 or a negative regularization: a warning, and the page works."""
    recorded(page, "app-bad-numbers", bad_numbers)


def bad_numbers(tab) -> None:
    field = tab.locator("#page-start input")
    field.fill("-1")
    field.press("Enter")
    tab.get_by_text("pages start at samples 0 to").first.wait_for()
    tab.wait_for_function("document.querySelector('#page-start input').value === '0'")
    field = tab.locator("#open-number input")
    field.fill("-5")
    field.press("Enter")
    tab.get_by_text("samples go from 0 to").first.wait_for()
    tab.wait_for_function("document.querySelector('#open-number input').value === '0'")
    # Gradio's own bounds check would mark the inputs as errors; the handler's check explains.
    tab.get_by_text("Advanced", exact=True).click()
    tab.locator("#regularization input").fill("-1")
    tab.click("#execute")
    tab.get_by_text(re.compile("regularization must be zero|nothing to paste")).first.wait_for()
    tab.screenshot(path=str(ARTIFACTS / "app-bad-numbers.png"), full_page=True)
    for elem_id in ("gallery", "page-start", "open-number", "regularization", "result"):
        assert "Error" not in tab.inner_text(f"#{elem_id}"), elem_id
    assert len(thumbnails(tab)) == 24
    assert "No edits" in tab.inner_text("#history")


def test_example_execute_and_strength_slider(page):
    """An example request loads from the picker; the strength slider re-renders the latest
    edit without solving again: at strength 0 the gallery is the original model's."""
    tab, folder = page
    try:
        tab.get_by_label("Edited").check()
        original = images(tab)
        tab.click("#example input")
        tab.get_by_role("option", name="Open mouth (painted masks)").click()
        tab.wait_for_function("document.querySelectorAll('#tray img').length === 8")
        shown = thumbnails(tab)
        tab.click("#execute")
        tab.wait_for_function("document.querySelector('#result').innerText.includes('applied')")
        assert "held-out samples where the rule fires" in tab.inner_text("#result")
        edited = images(tab, shown)
        assert np.abs(edited - original).mean() > 0.2
        shown = thumbnails(tab)
        slider = tab.locator("#strength input[type=range]")
        slider.fill("0")
        slider.dispatch_event("pointerup")
        tab.wait_for_function(
            "document.querySelector('#result').innerText.includes('now at strength 0')"
        )
        assert np.array_equal(images(tab, shown), original)
        assert "Error" not in tab.inner_text("body"), "a component shows an error badge"
        tab.screenshot(path=str(ARTIFACTS / "app-strength.png"), full_page=True)
    except Exception:
        tab.screenshot(path=str(ARTIFACTS / "app-failure.png"), full_page=True)
        print(app_log(folder))
        raise
