"""The grid's events: picking a model, layer or truncation; paging; a best match shown."""

import gradio as gr

from rewriting.errors import RewritingError, one_line
from rewriting.limits import MAX_SAMPLE_NUMBER
from zoo.registry import list_models

from . import session as ss
from .handlers import PROGRESS, current, friendly, page_start
from .page import Page
from .sentences import load_failure
from .settings import HEAVY, PAGE, PRIVATE


def picker_events(p: Page) -> None:
    """Picking a model (from the list or typed), a layer or a truncation."""

    def pick_model(name, st, progress=PROGRESS):
        try:
            session = ss.Session.start(name, lambda f, msg: progress(f, desc=msg))
            return p.everything(session, 0)
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
        return {**p.chosen.show(session), p.grid: p.page(session, start, shown, marks, r)}

    @friendly
    def pick_truncation(value, st, start, shown):
        session = current(st).with_truncation(value)
        return {**p.chosen.show(session), p.grid: p.page(session, start, shown, False, 1),
                p.highlight: False}

    chosen = p.chosen.outputs()
    # One load per choice: a pick from the list fires `select` once (`input` fires twice);
    # a typed hub: name loads when the field is left.
    p.model_dd.select(pick_model, [p.model_dd, p.state], p.every(), show_progress_on=p.note,
                      **PRIVATE, **HEAVY)
    p.model_dd.blur(pick_typed, [p.model_dd, p.state], p.every(), show_progress_on=p.note,
                    **PRIVATE, **HEAVY)
    p.layer_dd.input(pick_layer, [p.layer_dd, *p.view_args()], [*chosen, p.grid], **PRIVATE)
    p.trunc.release(pick_truncation, [p.trunc, p.state, p.first, p.view],
                    [*chosen, p.grid, p.highlight], **PRIVATE)


def paging_events(p: Page, prev_b: gr.Button, next_b: gr.Button) -> None:
    """Drawing the grid: from a typed start, in another view, a page back or on."""

    def show_page(st, start, shown, marks, r):
        if page_start(start) != int(start or 0):
            gr.Warning(f"samples go from 0 to {MAX_SAMPLE_NUMBER}; showing those from "
                       f"{page_start(start)}")
        try:
            return {p.grid: p.page(current(st), start, shown, marks, r),
                    p.first: page_start(start)}
        except RewritingError as err:
            gr.Warning(one_line(err))
            return {p.highlight: False, p.first: page_start(start)}

    def step(delta):
        def move(st, start, shown, marks, r):
            return show_page(st, page_start(page_start(start) + delta), shown, marks, r)

        return move

    paged = [p.grid, p.first, p.highlight]
    for trigger in (p.first.submit, p.view.input, p.highlight.input):
        trigger(show_page, p.view_args(), paged, **PRIVATE)
    prev_b.click(step(-PAGE), p.view_args(), paged, **PRIVATE)
    next_b.click(step(PAGE), p.view_args(), paged, **PRIVATE)


def found_events(p: Page) -> None:
    """A best match clicked: the grid shows the samples from it on, to paint on."""

    @friendly
    def show_found(evt: gr.SelectData, st, numbers, shown, marks, r):
        start = page_start(numbers[evt.index])
        return {p.grid: p.page(current(st), start, shown, marks, r), p.first: start}

    p.search_gal.select(show_found, [p.state, p.found, *p.view_args()[2:]], [p.grid, p.first],
                        **PRIVATE)
