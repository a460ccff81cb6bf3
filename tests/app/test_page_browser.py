"""The page's feedback in a real browser: after Suggest and Search their result is in view at
1280x900 and at 420x900; thirty hostile inputs (numbers out of range, double clicks, empty
selections) each get words, never Gradio's red "Error" nor a server traceback.

Screenshots go to tests/artifacts/ (page-*.png).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import test_app_browser
from test_app_browser import (
    ARTIFACTS,
    PHONE,
    SCREEN,
    app_log,
    in_view,
    recorded,
    result_says,
    show_tab,
    visitor,
)

pytestmark = pytest.mark.slow
app = test_app_browser.app  # the app and a Chromium, as the other browser tests drive them


def suggest_and_search(tab, viewport: dict, name: str) -> None:
    """With an example's selections: Suggest, then Search; each result in view."""
    tab.locator("#example-2").scroll_into_view_if_needed()
    tab.click("#example-2")
    result_says(tab, "Edit 1 applied")
    tab.wait_for_function("() => !document.querySelector('#example-2').disabled")
    tab.wait_for_timeout(1000)  # the measures that follow the edit
    show_tab(tab, "What you marked")
    tab.locator("#suggest").scroll_into_view_if_needed()
    tab.click("#suggest")
    tab.wait_for_function(
        "() => /Keep the current layer|Switched to layer/.test("
        "document.querySelector('#result')?.innerText || '')", timeout=300_000)
    tab.wait_for_timeout(300)
    assert in_view(tab, "#result", viewport)
    tab.screenshot(path=str(ARTIFACTS / f"page-suggest-{name}.png"))
    show_tab(tab, "What you marked")
    tab.locator("#search").scroll_into_view_if_needed()
    tab.click("#search")
    tab.wait_for_selector("#found img", timeout=180_000)
    tab.wait_for_timeout(300)
    assert in_view(tab, "#found", viewport)
    tab.screenshot(path=str(ARTIFACTS / f"page-search-{name}.png"))


@pytest.mark.parametrize("viewport, name", [(SCREEN, "1280"), (PHONE, "420")])
def test_suggest_and_search_results_are_in_view(app, viewport, name):
    tab = visitor(app, viewport)
    try:
        recorded((tab, app[2]), f"page-{name}",
                 lambda tab: suggest_and_search(tab, viewport, name))
    finally:
        tab.context.close()


def typed(elem_id: str, value: str, shown_in: str | None = None) -> Callable:
    """Type `value` in a number field (a slider's box too; on the tab `shown_in`) and press
    Enter."""
    def act(tab):
        if shown_in:
            show_tab(tab, shown_in)
        field = tab.locator(f"#{elem_id} input[type=number]")
        field.scroll_into_view_if_needed()
        field.fill(value)
        field.press("Enter")
    return act


def then_click(first: Callable, elem_id: str) -> Callable:
    def act(tab):
        first(tab)
        tab.click(f"#{elem_id}")
    return act


def click(elem_id: str, count: int = 1, shown_in: str = "What you marked") -> Callable:
    """Click a button (`count` times at once; buttons of the marks' tab shown first)."""
    def act(tab):
        show_tab(tab, shown_in)
        tab.locator(f"#{elem_id}").scroll_into_view_if_needed()
        tab.click(f"#{elem_id}", click_count=count)
    return act


#: The hostile inputs: a name, and what the visitor does.
HOSTILE = [
    ("execute with nothing marked", click("execute")),
    ("erase with nothing marked", click("erase")),
    ("execute twice at once with nothing marked", click("execute", 2)),
    ("erase twice at once with nothing marked", click("erase", 2)),
    ("suggest with nothing marked", click("suggest")),
    ("search with nothing marked", click("search")),
    ("remove with no place picked", click("remove")),
    ("revert with no edits", click("revert")),
    ("revert twice at once with no edits", click("revert", 2)),
    ("download the weights with no edits", click("download-weights")),
    ("download the delta with no edits", click("download-delta")),
    ("save all edits with none", click("save-edits")),
    ("save the request with nothing marked", click("save-request")),
    ("samples from -1", typed("page-start", "-1")),
    ("samples from 99999999", typed("page-start", "99999999")),
    ("samples from 1e400", typed("page-start", "1e400")),
    ("regularization -1, execute", then_click(typed("regularization", "-1"), "execute")),
    ("regularization 1e400, execute", then_click(typed("regularization", "1e400"), "execute")),
    ("rank 0, execute", then_click(typed("rank", "0"), "execute")),
    ("rank 99, execute", then_click(typed("rank", "99"), "execute")),
    ("channels 0, erase", then_click(typed("erase-channels", "0"), "erase")),
    ("channels 9999, erase", then_click(typed("erase-channels", "9999"), "erase")),
    ("strength 99 with no edit", typed("strength", "99", "Result")),
    ("strength -3 with no edit", typed("strength", "-3", "Result")),
    ("photo steps 0, project", then_click(typed("photo-steps", "0"), "photo-project")),
    ("photo steps 99999, project", then_click(typed("photo-steps", "99999"), "photo-project")),
    ("cancel with no projection", click("photo-cancel")),
    ("an example twice at once", click("example-0", 2)),
    ("execute the example's edit again, twice", click("execute", 2)),
    ("strength 99 on the edit", typed("strength", "99", "Result")),
]


def errors_shown(tab) -> list[str]:
    """Gradio's error toasts and error badges on the page."""
    return tab.evaluate(
        "() => [...document.querySelectorAll('.toast-body.error, .error')]"
        ".map(e => e.innerText.trim()).filter(t => t)")


def hostile_inputs(tab, folder) -> None:
    for label in ("Advanced", "Save, load and download", "Your photo"):
        tab.get_by_text(label, exact=True).click()
    for name, act in HOSTILE:
        act(tab)
        tab.wait_for_timeout(700)
        tab.wait_for_function(
            "() => !document.querySelector('.progress-text, .eta-bar, .wrap.generating')",
            timeout=180_000)
        shown = errors_shown(tab)
        assert not shown, (name, shown)
        assert "Error" not in tab.inner_text("body"), name
        assert "Traceback" not in app_log(folder), name
        tab.evaluate("document.querySelectorAll('.toast-close').forEach(b => b.click())")
    tab.screenshot(path=str(ARTIFACTS / "page-hostile.png"), full_page=True)
    assert tab.inner_text("#history").count("copy #") == 1  # the example, applied once


def test_thirty_hostile_inputs_get_words_never_an_error(app):
    assert len(HOSTILE) == 30
    tab = visitor(app)
    try:
        recorded((tab, app[2]), "page-hostile", lambda tab: hostile_inputs(tab, app[2]))
    finally:
        tab.context.close()
