"""Rewrite a generator's rule with the brush: copy, paste, context, execute (the paper's tool).

`python app.py` serves on 127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT change it)
and starts on the embedded default model without any network (where a CUDA GPU computes and
the Hub answers, on the paper's StyleGAN2 church; REWRITING_DEFAULT_MODEL overrides). The engine
computes on REWRITING_DEVICE, else `auto` (a CUDA GPU if there is one). Each visitor's state is a
`rewriting_app.session.Session` in gr.State: an EditStack of deltas on a model that the zoo
loads once and shares read-only, so one visitor's edits never change what another one sees.
Outside a Space, publishing to the Hub is off unless the app is started with
REWRITING_ALLOW_PUBLISH=1 (it would use this machine's token for every visitor).
The page itself (its panels, events, hidden API and view-model) is the `rewriting_app` package.
"""

import gradio as gr

from rewriting_app.api import api_endpoints
from rewriting_app.brush_events import paint_events, search_events, suggest_events, tray_events
from rewriting_app.edit_events import (
    advice_events,
    example_events,
    execute_events,
    revert_events,
    strength_events,
    unlock_after,
)
from rewriting_app.file_cache import CACHE_AGE
from rewriting_app.file_events import (
    download_events,
    edit_file_events,
    publish_events,
    request_file_events,
)
from rewriting_app.gallery_events import found_events, paging_events, picker_events
from rewriting_app.gpu import preload
from rewriting_app.page import Page
from rewriting_app.panels import (
    action_bar,
    advanced_settings,
    comparison_picture,
    files_panel,
    found_gallery,
    history_panel,
    model_pickers,
    paint_panel,
    publish_panel,
    result_panel,
    selections_tab,
)
from rewriting_app.photo import photo_brush_events, photo_panel
from rewriting_app.session_events import session_events
from rewriting_app.settings import (
    BROWSER_KEY,
    BROWSER_SECRET,
    CSS,
    DEFAULT_MODEL,
    INTRO,
    LIGHT_LIMIT,
    QUEUE_SIZE,
)

#: What the Space's clients and the tests read here besides the page.
__all__ = ["BROWSER_KEY", "BROWSER_SECRET", "DEFAULT_MODEL", "build"]


def build() -> gr.Blocks:
    """The app's page and its events.

    The panels are laid out first, then their events are wired in a fixed order: an event's
    position is its `fn_index`, which clients that join the queue directly rely on.
    """
    # Rendered pictures and downloads in Gradio's cache are deleted after an hour.
    with gr.Blocks(title="Rewriting a Deep Generative Model",
                   delete_cache=(CACHE_AGE // 2, CACHE_AGE)) as demo:
        state = gr.State(None)
        saved = gr.BrowserState(None, storage_key=BROWSER_KEY, secret=BROWSER_SECRET)
        found = gr.State([])
        tray_pick = gr.State(None)
        gr.Markdown(INTRO, elem_id="intro")
        example_bs, execute_b, erase_b = action_bar()
        model_dd, layer_dd, trunc, note = model_pickers()
        with gr.Row(elem_id="workspace"):
            with gr.Column(scale=1, min_width=300), gr.Tabs(elem_id="pictures") as pictures:
                with gr.Tab("Paint on samples", id="paint", elem_id="paint-tab"):
                    paint = paint_panel()
                with gr.Tab("Before and after", id="compare", elem_id="compare-tab"):
                    comparison_img = comparison_picture()
            with gr.Column(scale=1, min_width=300), gr.Tabs(elem_id="views") as tabs:
                with gr.Tab("What you marked", id="chosen", elem_id="chosen-tab"):
                    marked = selections_tab(state, tray_pick)
                with gr.Tab("Result", id="result", elem_id="result-tab"):
                    result, strength, advice_b = result_panel()
                with gr.Tab("Best matches", id="found", elem_id="found-tab"):
                    search_gal = found_gallery()
        rank, method, reg, erase_n, auto = advanced_settings()
        compared, pending, measured = gr.State(None), gr.State(None), gr.State(None)
        history, revert_dd, revert_b = history_panel()
        files = files_panel()
        publish = publish_panel()
        photo = photo_panel(state)
        p = Page(state, model_dd, layer_dd, trunc, note, paint.grid, paint.first, paint.mode,
                 paint.view, paint.highlight, pictures, tabs, search_gal, found, marked.chosen,
                 result, comparison_img, strength, compared, pending, measured, history,
                 revert_dd, rank, method, reg, erase_n, auto, advice_b)
        session_events(demo, p, saved)
        edit_file_events(p, files)
        picker_events(p)
        paging_events(p, paint.prev_b, paint.next_b)
        found_events(p)
        tray_events(p, marked.remove_b, marked.clear_b)
        edit_buttons = [*example_bs, execute_b, erase_b, advice_b]
        edits = execute_events(p, execute_b, erase_b, edit_buttons)
        revert_events(p, revert_b)
        search_events(p, marked.search_b)
        strength_events(p)
        suggest_events(p, marked.suggest_b)
        request_file_events(p, files)
        edits += example_events(p, example_bs, edit_buttons)
        download_events(p, files)
        publish_events(p, publish)
        api_endpoints(state)
        photo_brush_events(photo, marked.chosen)
        edits.append(advice_events(p, edit_buttons))
        paint_events(p)
        # Last, so that every event above keeps its position (`fn_index`).
        unlock_after(edits, edit_buttons)
    return demo


if __name__ == "__main__":
    from rewriting_app.warm import warm_up_in_background

    preload(DEFAULT_MODEL)
    # The first click's waits (statistics, the examples' readings) are paid meanwhile.
    warm_up_in_background(DEFAULT_MODEL)
    build().queue(default_concurrency_limit=LIGHT_LIMIT, max_size=QUEUE_SIZE).launch(css=CSS)
