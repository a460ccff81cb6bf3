"""The edit's events: Execute, Erase and the examples (locked while one runs), strength, revert."""

import json
from collections.abc import Sequence

import gradio as gr
import numpy as np

from rewriting.choose import Setting
from rewriting.errors import RewritingError
from rewriting.limits import read_json_file
from rewriting.request import parse_request
from rewriting.threads import one_thread

from . import session as ss
from .file_cache import image_file
from .handlers import PROGRESS, as_number, current, friendly, on_gpu
from .page import Page
from .settings import EDIT, EMBEDDED_MODEL, EXAMPLES, EXAMPLES_DIR, PRIVATE


def distinct(components: Sequence[gr.components.Component]) -> list:
    """The components once each, in order (an event lists each output once)."""
    return list({id(c): c for c in components}.values())


def edit_lock(buttons: Sequence[gr.Button], locked: bool) -> str:
    """JavaScript that disables (or enables again) the buttons that make an edit, in the page
    itself and at once: a second press while an edit runs would apply it twice. The event's
    inputs pass through unchanged."""
    selector = json.dumps(", ".join(f"#{b.elem_id}" for b in buttons))
    return (f"(...inputs) => {{ document.querySelectorAll({selector}).forEach("
            f"b => {{ b.disabled = {json.dumps(locked)}; }}); return inputs; }}")


def unlock_after(edits: Sequence[Sequence[gr.events.Dependency]],
                 buttons: Sequence[gr.Button]) -> None:
    """Enable the edit buttons again once an edit is done, its measures kept, or one of its
    steps failed (the page follows `then` only after a success)."""
    unlock = edit_lock(buttons, False)
    for steps in edits:
        for step in steps:
            step.failure(None, None, None, js=unlock, **PRIVATE)
        steps[-1].then(None, None, None, js=unlock, **PRIVATE)


def execute_events(p: Page, execute_b: gr.Button, erase_b: gr.Button,
                   buttons: Sequence[gr.Button]) -> list[list[gr.events.Dependency]]:
    """Execute the selections' rule, or erase what is under Paste; the `buttons` that edit are
    locked meanwhile (each edit's steps returned, for `unlock_after`)."""

    def run(erase: bool):
        @on_gpu
        @friendly
        def go(st, r, m, lam, channels, auto, progress=PROGRESS):
            session = current(st)
            request = session.request(int(r), m, lam, int(channels) if erase else None,
                                      bool(auto))
            return p.executed(session, request, progress)

        return go

    settings = [p.state, p.rank, p.method, p.reg, p.erase_n, p.auto]
    return [p.after_executing(button.click(run(erase), settings, p.run_outputs(),
                                           show_progress_on=p.result,
                                           js=edit_lock(buttons, True), **PRIVATE, **EDIT))
            for button, erase in ((execute_b, False), (erase_b, True))]


def advice_events(p: Page, buttons: Sequence[gr.Button]) -> list[gr.events.Dependency]:
    """Redo the latest edit with the setting its verdict advises (the `buttons` that edit are
    locked meanwhile; the steps returned)."""

    @on_gpu
    @friendly
    def apply_advice(st, progress=PROGRESS):
        session = current(st)
        advice = session.stack.deltas[-1].metrics.get("advice") if session.stack.deltas else None
        if not advice:
            raise RewritingError("the latest edit has no advice to apply")
        latest = session.stack.deltas[-1]
        request = Setting(**advice["setting"]).apply(
            parse_request(latest.request, latents=latest.latents))
        return p.executed(session.reverted(len(session.stack.deltas) - 1), request, progress)

    return p.after_executing(p.advice_b.click(apply_advice, [p.state], p.run_outputs(),
                                              show_progress_on=p.result,
                                              js=edit_lock(buttons, True), **PRIVATE, **EDIT))


def example_events(p: Page, example_bs: list[gr.Button],
                   buttons: Sequence[gr.Button]) -> list[list[gr.events.Dependency]]:
    """Each example button loads its request (on the embedded model) and executes it; the
    `buttons` that edit are locked meanwhile (each edit's steps returned)."""

    def example(name: str):
        @on_gpu
        @friendly
        def load_and_execute(st, start, progress=PROGRESS):
            session, switched = current(st), {}
            if session.generator.name != EMBEDDED_MODEL and not session.stack.deltas:
                # The examples are for the embedded model: a visitor without edits moves.
                session, start = ss.Session.start(EMBEDDED_MODEL), 0
                switched = p.everything(session, start)
            data = read_json_file(EXAMPLES_DIR / EXAMPLES[name], "example")
            session, request = session.loaded(data)
            done = p.executed(session, request, progress)
            with one_thread():
                selections = p.loaded(session, request, start)
            return {**switched, **selections, **done}

        return load_and_execute

    outputs = distinct([*p.every(), *p.loaded_outputs(), *p.run_outputs(), p.search_gal,
                        p.found])
    return [p.after_executing(button.click(example(name), [p.state, p.first], outputs,
                                           show_progress_on=p.comparison_img,
                                           js=edit_lock(buttons, True), **PRIVATE, **EDIT))
            for name, button in zip(EXAMPLES, example_bs, strict=True)]


def strength_text(index: int, strength: float, measuring: bool) -> str:
    """What the page says as soon as an edit's strength moved (before any measure)."""
    if strength == 0:
        return (f"**Edit {index} is at strength 0:** at strength 0 this edit changes nothing; "
                "the model is as it was before it. Raise the strength to apply it again.")
    return (f"**Edit {index} is now at strength {strength:g}** (the same change, scaled; "
            "nothing solved again)" + (": measuring it again." if measuring else "."))


def strength_events(p: Page) -> None:
    """Re-render the latest edit at the strength picked, without solving again."""

    @friendly
    def rescale(st, s, start, shown, pending):
        before = current(st)
        strength = as_number(s, "the strength", float)
        session = before.with_strength(strength)
        # At strength 0 the edit changes nothing: there is nothing to measure.
        latest = (pending is not None and pending.holds(before.stack.deltas[-1])
                  and strength != 0)
        # The before/after picture shows only right after an Execute (not after a reload or a
        # revert): then the grid alone shows the new strength.
        picture = ({p.comparison_img: image_file(np.asarray(ss.comparison(session, shown)))}
                   if shown else {})
        return {
            p.state: session, p.grid: p.page(session, start, "Edited", False, 1),
            p.view: "Edited", p.highlight: False, p.strength: strength,
            p.result: strength_text(len(session.stack.deltas), strength, latest),
            p.pending: pending.rescaled(session) if latest else None, **picture,
        }

    p.after_changing(p.strength.release(
        rescale, [p.state, p.strength, p.first, p.compared, p.pending],
        [p.state, p.grid, p.view, p.highlight, p.strength, p.result, p.comparison_img,
         p.pending],
        **PRIVATE))


def revert_events(p: Page, revert_b: gr.Button) -> None:
    """Revert the edit picked; the others stay."""

    @friendly
    def revert_picked(st, index, start, shown):
        if index is None:
            raise RewritingError("there is no edit to revert")
        index = as_number(index, "the edit to revert")
        session = current(st).reverted(index)
        return {
            p.state: session, **p.edits(session),
            p.grid: p.page(session, start, shown, False, 1),
            p.highlight: False, p.result: f"Edit {index + 1} reverted.",
            p.comparison_img: gr.update(value=None, visible=False), p.compared: None,
            p.pictures: gr.Tabs(selected="paint"), p.pending: None, p.search_gal: None,
            p.found: [],
            p.advice_b: gr.update(visible=False),
        }

    revert_b.click(revert_picked, [p.state, p.revert_dd, p.first, p.view],
                   [p.state, p.history, p.revert_dd, p.strength, p.grid, p.highlight,
                    p.result, p.comparison_img, p.compared, p.pictures, p.pending,
                    p.search_gal, p.found, p.advice_b],
                   **PRIVATE)
