"""The brush's events: a stroke on the grid kept as a selection, the tray, search, a layer."""

import gradio as gr

from rewriting.errors import RewritingError
from rewriting.request import Selection
from rewriting.suggest import layer_table

from . import paint_grid
from . import session as ss
from .handlers import PROGRESS, current, friendly, on_gpu, page_start, tiles
from .page import Page
from .pictures import brush_mask, mask_url, tint
from .search import matches, probe, search
from .settings import HEAVY, PAGE, PRIVATE, SEARCH_SAMPLES, SEARCH_SHOWN, show_result


def paint_events(p: Page) -> None:
    """A finished stroke on the grid: kept in the brush's mode, the grid and the selections
    redrawn, the mode moved on (copy, then paste, then context)."""

    @friendly
    def stroke_done(value, st, mode, start, shown, marks, r):
        session = current(st)
        numbers = list(range(page_start(start), page_start(start) + PAGE))
        session = paint_grid.with_stroke(session, paint_grid.read_stroke(value, numbers), mode)
        return {**p.chosen.show(session), p.grid: p.page(session, start, shown, marks, r),
                p.mode: paint_grid.NEXT_MODE[mode]}

    p.grid.input(stroke_done, [p.grid, p.state, p.mode, *p.view_args()[1:]],
                 [*p.chosen.outputs(), p.grid, p.mode], **PRIVATE)


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
    def remove(st, index, start, shown, marks, r):
        if index is None:
            raise RewritingError("click a place in the tray first, then Remove")
        session = current(st).without_context(index)
        return {**p.chosen.show(session), p.grid: p.page(session, start, shown, marks, r)}

    @friendly
    def clear(st, start, shown, marks, r):
        before = current(st)
        session = ss.Session(before.stack, before.layer, before.truncation,
                             latents=before.latents)
        return {**p.chosen.show(session), p.grid: p.page(session, start, shown, marks, r),
                p.mode: "copy"}

    drawn = [p.state, *p.view_args()[1:]]
    p.chosen.tray.select(pick_tray, None, p.chosen.tray_pick, **PRIVATE)
    remove_b.click(remove, [p.state, p.chosen.tray_pick, *drawn[1:]],
                   [*p.chosen.outputs(), p.grid], **PRIVATE)
    clear_b.click(clear, drawn, [*p.chosen.outputs(), p.grid, p.mode], **PRIVATE)


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
                   show_progress_on=p.search_gal, **PRIVATE, **HEAVY
                   ).success(None, None, None, js=show_result("#found"), **PRIVATE)


def suggest_events(p: Page, suggest_b: gr.Button) -> None:
    """Solve the selections' rule at every layer of the model as the visitor sees it (their
    edits included) and switch to the layer where it reaches furthest, or say to keep the
    current one when none does better."""

    @on_gpu
    @friendly
    def suggest_now(st, r, m, lam, start, progress=PROGRESS):
        session = current(st)
        progress(0.0, desc="Trying the edit at every layer (first time: measuring each layer)")
        suggestion = ss.suggest(session, session.request(int(r), m, lam))
        rows = {row["layer"]: row for row in suggestion.rows}
        here = rows.get(session.layer, {}).get("generalization")
        best = rows[suggestion.layer].get("generalization")
        table = ("<details><summary>Exact figures</summary>\n\n```\n"
                 f"{layer_table(suggestion)}\n```\n</details>")
        if best is None or best <= 0 or suggestion.layer == session.layer or (
                here is not None and best <= here):
            return {p.result: f"**Keep the current layer ({session.layer}).** No other layer "
                    "carries this rule further on other samples." + "\n\n" + table,
                    p.tabs: gr.Tabs(selected="result")}
        session = session.with_layer(suggestion.layer)
        return {
            **p.chosen.show(session), p.layer_dd: suggestion.layer,
            p.grid: p.page(session, start, "Edited", False, 1),
            p.result: f"**Switched to layer {suggestion.layer}:** there the rule reaches "
            f"furthest ({best:.0%} of the way on other samples, against "
            f"{'nothing' if here is None else f'{here:.0%}'} at {current(st).layer}) without "
            "changing much else. Press Execute to apply it there.\n\n" + table,
            p.tabs: gr.Tabs(selected="result"),
        }

    suggest_b.click(suggest_now, [p.state, p.rank, p.method, p.reg, p.first],
                    [*p.chosen.outputs(), p.layer_dd, p.grid, p.result, p.tabs],
                    show_progress_on=p.result, **PRIVATE, **HEAVY
                    ).success(None, None, None, js=show_result("#result"), **PRIVATE)
