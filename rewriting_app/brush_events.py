"""The brush's events: keeping a painted mask as a selection, the context tray, search, a layer."""

from collections.abc import Callable

import gradio as gr

from rewriting.errors import RewritingError
from rewriting.request import Selection
from rewriting.suggest import layer_table

from . import session as ss
from .handlers import PROGRESS, current, friendly, on_gpu, tiles
from .page import Page, Selections
from .pictures import brush_mask, mask_url, tint
from .search import matches, probe, search
from .settings import HEAVY, PRIVATE, SEARCH_SAMPLES, SEARCH_SHOWN


def store(chosen: Selections, role: str, n: int) -> Callable:
    """A handler that keeps the painted mask on sample `n` as the Copy, Paste or a Context."""

    @friendly
    def keep(value, st):
        return chosen.show(painted(current(st), value, role, n))

    return keep


def painted(session: ss.Session, value: dict | None, role: str, sample: int | str) -> ss.Session:
    """The session with the mask painted on `sample` (an ImageEditor value) kept as the Copy,
    the Paste or one more Context."""
    mask = brush_mask((value or {}).get("layers") or [])
    return session.with_selection(role, Selection(sample, mask_url(mask)))


def tray_events(p: Page, remove_b: gr.Button, clear_b: gr.Button) -> None:
    """Picking a context in the tray, removing it, clearing all selections."""

    @friendly
    def pick_tray(evt: gr.SelectData):
        return evt.index

    @friendly
    def remove(st, index):
        if index is None:
            raise RewritingError("click a context example in the tray first, then Remove")
        return p.chosen.show(current(st).without_context(index))

    @friendly
    def clear(st):
        session = current(st)
        return p.chosen.show(ss.Session(session.stack, session.layer, session.truncation))

    p.chosen.tray.select(pick_tray, None, p.chosen.tray_pick, **PRIVATE)
    remove_b.click(remove, [p.state, p.chosen.tray_pick], p.chosen.outputs(), **PRIVATE)
    clear_b.click(clear, [p.state], p.chosen.outputs(), **PRIVATE)


def search_events(p: Page, search_b: gr.Button) -> None:
    """Search the samples where the context key fires most; show them under Best matches."""

    @on_gpu
    @friendly
    def find(st, r, progress=PROGRESS):
        session = current(st)
        stats = ss.statistics(session, lambda d, t: progress(d / t, desc="Key statistics"))
        key, threshold = probe(session, stats, int(r))
        best = search(session, key, SEARCH_SAMPLES, SEARCH_SHOWN)
        numbers = [n for n, _ in best]
        images = tint(ss.samples(session, numbers),
                         matches(session, key, threshold, numbers), 0.45)
        score = dict(best)
        return {p.search_gal: tiles(numbers, images, lambda n: f" · {score[n]:.2f}"),
                p.found: numbers, p.tabs: gr.Tabs(selected="found")}

    search_b.click(find, [p.state, p.rank], [p.search_gal, p.found, p.tabs],
                   show_progress_on=p.search_gal, **PRIVATE, **HEAVY)


def suggest_events(p: Page, suggest_b: gr.Button) -> None:
    """Suggest the layer where the selections' rule generalises best, and switch to it."""

    @on_gpu
    @friendly
    def suggest_now(st, r, m, lam, start, progress=PROGRESS):
        session = current(st)
        progress(0.0, desc="Solving at every layer (statistics: first time only)")
        suggestion = ss.suggest(session, session.request(int(r), m, lam))
        session = session.with_layer(suggestion.layer)
        return {
            **p.chosen.show(session), p.layer_dd: suggestion.layer,
            p.gallery: p.page(session, start, "Edited", False, 1),
            p.result: f"Suggested layer **{suggestion.layer}** (best generalisation among "
            f"specific layers):\n```\n{layer_table(suggestion)}\n```",
        }

    suggest_b.click(suggest_now, [p.state, p.rank, p.method, p.reg, p.first],
                    [*p.chosen.outputs(), p.layer_dd, p.gallery, p.result],
                    show_progress_on=p.result, **PRIVATE, **HEAVY)
