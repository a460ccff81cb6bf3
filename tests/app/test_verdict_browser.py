"""The verdict in a real browser: an edit that did not take says so beside its picture, with
the measured reasons, and one click redoes it with the setting the tool found better."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_app_browser
from test_app_browser import ARTIFACTS, recorded, result_says, visitor, warned

pytestmark = pytest.mark.slow
app = test_app_browser.app  # the app and a Chromium, as the other browser tests drive them

#: A tuning request that does not take at the fixed defaults (a mouth pasted on a cheek).
CHEEK = Path(__file__).parents[2] / "examples" / "evaluation" / "7-mouth-to-cheek.json"


def test_an_edit_that_did_not_take_says_why_and_the_advice_redoes_it(app, tmp_path):
    request = tmp_path / "cheek.json"
    request.write_text(json.dumps(json.loads(CHEEK.read_text())))
    tab = visitor(app)

    def steps(tab):
        tab.get_by_text("Advanced", exact=True).click()
        tab.uncheck("#auto input")  # the defaults as they are, not chosen for this request
        tab.get_by_text("Save, load and download", exact=True).click()
        with tab.expect_file_chooser() as chooser:
            tab.click("#load-request")
        chooser.value.set_files(str(request))
        warned(tab, "press Execute")  # and closed, as it covers Execute
        tab.click("#execute")
        tab.wait_for_function(  # the verdict comes after the picture, its search included
            "() => document.querySelector('#result')?.innerText.includes('Likely reason')",
            timeout=180_000)
        said = tab.inner_text("#result")
        assert "Likely reason" in said and "Exact figures" in said
        advice = tab.locator("#apply-advice")
        advice.wait_for(state="visible")
        label = advice.inner_text()
        assert label.startswith("Try layer ") and "checked" not in label
        ARTIFACTS.mkdir(exist_ok=True)
        tab.locator("#result").scroll_into_view_if_needed()
        tab.screenshot(path=str(ARTIFACTS / "app-verdict-1280.png"))
        layer = label.split()[2].rstrip(",")
        advice.click()
        # The edit is redone as advised: still one edit, now at the advised layer.
        tab.wait_for_function(
            "layer => document.querySelector('#history')?.innerText.includes('layer ' + layer)",
            arg=layer,
        )
        result_says(tab, "The edit")
        assert tab.inner_text("#history").count("copy #") == 1
        assert "Error" not in tab.inner_text("body")

    try:
        recorded((tab, app[2]), "app-verdict", steps)
    finally:
        tab.context.close()
