"""The gallery's events: picking a model, layer or truncation; paging; opening a sample."""

import gradio as gr

from rewriting.errors import RewritingError, one_line
from rewriting.limits import MAX_SAMPLE_NUMBER
from zoo.registry import list_models

from . import session as ss
from .handlers import CANVAS_TICKETS, PROGRESS, current, friendly, page_start
from .page import Page
from .sentences import load_failure
from .settings import HEAVY, PAGE, PRIVATE, SHOW_CANVAS


def picker_events(p: Page) -> None:
    """Picking a model (from the list or typed), a layer or a truncation."""

    def pick_model(name, st, progress=PROGRESS):
        try:
            session = ss.Session.start(name, lambda f, msg: progress(f, desc=msg))
            return p.everything(session, 0, 0)
        except Exception as err:  # a Hub repository is untrusted: the page stays as it was
            gr.Warning(load_failure(name, err))
            return {p.model_dd: current(st).generator.name}

    def pick_typed(name, st, progress=PROGRESS):
        # A name picked from the list is loaded by the select event alone.
        listed = {m.name for m in list_models()}
        if name in listed or name == current(st).generator.name:
            return gr.skip()
        return pick_model(name, st, progress)

    @friendly
    def pick_layer(name, st, start, shown, marks, r):
        session = current(st).with_layer(name)
        return {**p.chosen.show(session), p.gallery: p.page(session, start, shown, marks, r)}

    @friendly
    def pick_truncation(value, st, start, shown, n):
        session = current(st).with_truncation(value)
        return {**p.chosen.show(session), **p.opened(session, n),
                p.gallery: p.page(session, start, shown, False, 1), p.highlight: False}

    chosen = p.chosen.outputs()
    # One load per choice: a pick from the list fires `select` once (`input` fires twice);
    # a typed hub: name loads when the field is left.
    p.model_dd.select(pick_model, [p.model_dd, p.state], p.every(), show_progress_on=p.note,
                      **PRIVATE, **HEAVY)
    p.model_dd.blur(pick_typed, [p.model_dd, p.state], p.every(), show_progress_on=p.note,
                    **PRIVATE, **HEAVY)
    p.layer_dd.input(pick_layer, [p.layer_dd, *p.view_args()], [*chosen, p.gallery], **PRIVATE)
    p.trunc.release(pick_truncation, [p.trunc, p.state, p.first, p.view, p.number],
                    [*chosen, p.gallery, p.highlight, p.number, p.canvas_key], **PRIVATE)


def paging_events(p: Page, prev_b: gr.Button, next_b: gr.Button) -> None:
    """Drawing a gallery page: from a typed start, in another view, a page back or on."""

    def show_page(st, start, shown, marks, r):
        if page_start(start) != int(start or 0):
            gr.Warning(f"pages start at samples 0 to {page_start(MAX_SAMPLE_NUMBER)}; "
                       f"showing the page from {page_start(start)}")
        try:
            return {p.gallery: p.page(current(st), start, shown, marks, r),
                    p.first: page_start(start)}
        except RewritingError as err:
            gr.Warning(one_line(err))
            return {p.highlight: False, p.first: page_start(start)}

    def step(delta):
        def move(st, start, shown, marks, r):
            return show_page(st, page_start(page_start(start) + delta), shown, marks, r)

        return move

    paged = [p.gallery, p.first, p.highlight]
    for trigger in (p.first.submit, p.view.input, p.highlight.input):
        trigger(show_page, p.view_args(), paged, **PRIVATE)
    prev_b.click(step(-PAGE), p.view_args(), paged, **PRIVATE)
    next_b.click(step(PAGE), p.view_args(), paged, **PRIVATE)


def opening_events(p: Page) -> None:
    """Opening a sample in the brush canvas: clicked in a gallery, or by its number."""

    @friendly
    def open_clicked(evt: gr.SelectData, st, start):
        return p.opened(current(st), page_start(start) + evt.index)

    @friendly
    def open_found(evt: gr.SelectData, st, numbers):
        return p.opened(current(st), numbers[evt.index])

    @friendly
    def open_number(st, n):
        session = current(st)
        last = session.generator.max_sample
        n = int(n or 0)
        if not 0 <= n <= last:
            # Snap the field back into range, as the page start does: the canvas is drawn
            # from this field, so an out-of-range value left there would break it later.
            gr.Warning(f"samples go from 0 to {last}; opening sample {min(max(n, 0), last)}")
            n = min(max(n, 0), last)
        return p.opened(session, n)

    shown_canvas = [p.number, p.canvas_key]
    p.gallery.select(open_clicked, [p.state, p.first], shown_canvas, js=SHOW_CANVAS, **PRIVATE)
    p.search_gal.select(open_found, [p.state, p.found], shown_canvas, js=SHOW_CANVAS,
                        **PRIVATE)
    p.number.submit(open_number, [p.state, p.number], shown_canvas, **PRIVATE)


def canvas_follows_view(p: Page) -> None:
    """Redraw the brush canvas from the model the gallery shows (edited or original)."""
    p.view.input(lambda: next(CANVAS_TICKETS), None, p.canvas_key, **PRIVATE)
