"""The components several panels share (`Page`, `Selections`) and what they show of a session."""

from dataclasses import dataclass

import gradio as gr
import numpy as np

from rewriting.errors import RewritingError
from rewriting.request import DEFAULT_ERASE_CHANNELS, EditRequest
from rewriting.rewrite import DEFAULT_STRENGTH
from rewriting.solve import DEFAULT_REGULARIZATION
from rewriting.threads import one_thread

from . import session as ss
from .file_cache import image_file
from .handlers import current, friendly, on_gpu, page_start
from .paint_grid import grid_value
from .pictures import enlarge, tint
from .search import matches, probe
from .sentences import layer_choices, model_choices, result_text, solved_text
from .settings import AFTER, COMPARE_SHOWN, NO_RESULT, PAGE, PRIVATE, TILE_PX, show_result


def apply_edit(session: ss.Session, request: EditRequest, progress: gr.Progress) -> tuple:
    """Solve the request on the session's layer (first-time statistics reported as progress):
    the edited session, the samples to show and the measures still to make."""

    def report(done: int, total: int) -> None:
        progress(done / total, desc=f"Key statistics of {session.layer} "
                 f"(first time only): {done}/{total} samples")

    found = None
    if request.auto:
        progress(0.0, desc="Trying layers, ranks and strengths for this edit")
        with one_thread():
            request, found = ss.choose_settings(session, request, report)
    stats = ss.statistics(session.with_layer(request.layer or session.layer), report)
    progress(1.0, desc="Solving for the new weights")
    with one_thread():
        return ss.execute_shown(session, request, stats, COMPARE_SHOWN, found)


@on_gpu
@friendly
def measure_pending(pending: ss.Pending | None, shown: ss.Shown | None) -> tuple:
    """Measure an edit already on screen: the result text with its figures and verdict, the
    button that applies the advice (shown when there is one), and its metrics."""
    if pending is None:
        return gr.skip(), gr.skip(), None
    metrics = ss.measure(pending)
    count = len(shown.numbers) if shown else 0
    advice = metrics.get("advice")
    button = (gr.update(visible=True, value=f"Try {advice['label']}") if advice
              else gr.update(visible=False))
    return (stacked_note(pending.before) + result_text(len(pending.after.stack.deltas), metrics,
                                                       count), button, (pending, metrics))


def stacked_note(before: ss.Session) -> str:
    """What the result says first when an edit joins earlier ones (Markdown, or nothing)."""
    earlier = len(before.stack.deltas)
    if not earlier:
        return ""
    return (f"*Added on top of your {earlier} earlier edit{'s' * (earlier > 1)}: Revert "
            "removes any of them.*\n\n")


def keep_measures(st: ss.Session | None, measured: tuple | None) -> ss.Session:
    """The session with a measured edit's metrics (as it was if it no longer holds that edit:
    a quick step of its own, so that a revert in between is never undone)."""
    if st is None or measured is None:
        return gr.skip()
    return ss.with_measures(st, *measured)


@dataclass(eq=False)
class Selections:
    """The brush's selections: copied and pasted regions, the goal preview, the context tray."""

    state: gr.State
    copy_img: gr.Image
    paste_img: gr.Image
    preview_img: gr.Image
    tray: gr.Gallery
    tray_pick: gr.State

    def outputs(self) -> list:
        """The components `show` updates, in the page's order."""
        return [self.state, self.copy_img, self.paste_img, self.preview_img, self.tray,
                self.tray_pick]

    def show(self, session: ss.Session) -> dict:
        """The session and its selections as thumbnails (no context picked)."""

        def thumb(selection):
            if selection is None:
                return None
            return image_file(enlarge(ss.selection_image(session, selection), TILE_PX))

        both = session.copy is not None and session.paste is not None
        return {
            self.state: session,
            self.copy_img: thumb(session.copy),
            self.paste_img: thumb(session.paste),
            self.preview_img: (image_file(enlarge(ss.paste_preview(session), TILE_PX))
                               if both else None),
            self.tray: [(thumb(s), f"#{s.sample}") for s in session.context],
            self.tray_pick: None,
        }


@dataclass(eq=False)
class Page:
    """The components that several panels read or update, and what they show of a session."""

    state: gr.State
    model_dd: gr.Dropdown
    layer_dd: gr.Dropdown
    trunc: gr.Slider
    note: gr.Markdown
    grid: gr.HTML
    first: gr.Number
    mode: gr.Radio
    view: gr.Radio
    highlight: gr.Checkbox
    pictures: gr.Tabs
    tabs: gr.Tabs
    search_gal: gr.Gallery
    found: gr.State
    chosen: Selections
    result: gr.Markdown
    comparison_img: gr.Image
    strength: gr.Slider
    compared: gr.State
    pending: gr.State
    measured: gr.State
    history: gr.Markdown
    revert_dd: gr.Dropdown
    rank: gr.Slider
    method: gr.Radio
    reg: gr.Number
    erase_n: gr.Slider
    auto: gr.Checkbox
    advice_b: gr.Button

    def view_args(self) -> list:
        """The inputs the grid is drawn from."""
        return [self.state, self.first, self.view, self.highlight, self.rank]

    def every(self) -> list:
        """What `everything` updates."""
        return [self.state, self.model_dd, self.layer_dd, self.trunc, self.note, self.grid,
                self.first, self.mode, self.view, self.highlight, *self.chosen.outputs()[1:],
                self.history, self.revert_dd, self.strength, self.result, self.comparison_img,
                self.pictures, self.compared, self.pending, self.search_gal, self.found]

    def run_outputs(self) -> list:
        """What `executed` updates."""
        return [self.state, self.history, self.revert_dd, self.view, self.highlight,
                self.result, self.comparison_img, self.strength, self.compared, self.pending,
                self.pictures, self.tabs, self.search_gal, self.found, self.advice_b]

    def loaded_outputs(self) -> list:
        """What `loaded` updates."""
        return [*self.chosen.outputs(), self.grid, self.layer_dd, self.trunc, self.rank,
                self.method, self.reg, self.erase_n]

    def page(self, session: ss.Session, start, shown, marks, r) -> str:
        """The grid's samples from `start`, edited or original, tinted where the context fires,
        with the selections drawn on them."""
        numbers = list(range(page_start(start), page_start(start) + PAGE))
        images = ss.samples(session, numbers, shown != "Original")
        if marks:
            key, threshold = probe(session, ss.statistics(session), int(r))
            images = tint(images, matches(session, key, threshold, numbers), 0.45)
        return grid_value(session, numbers, images)

    def edits(self, session: ss.Session) -> dict:
        """The edit history, the revert picker (on the latest edit) and the latest edit's
        strength."""
        lines = ss.history(session)
        latest = len(lines) - 1 if lines else None
        empty = "No edits yet: you are looking at the original model."
        deltas = session.stack.deltas
        return {
            self.history: "\n".join(lines) or empty,
            self.revert_dd: gr.update(choices=[(t, i) for i, t in enumerate(lines)], value=latest),
            self.strength: deltas[-1].strength if deltas else DEFAULT_STRENGTH,
        }

    def everything(self, session: ss.Session, start) -> dict:
        """The whole page redrawn for a session (a new one, a loaded one, another model)."""
        g = session.generator
        return {
            **self.chosen.show(session), **self.edits(session),
            self.model_dd: gr.update(choices=model_choices(), value=g.name),
            self.layer_dd: gr.update(choices=layer_choices(g), value=session.layer),
            self.trunc: gr.update(visible=g.default_truncation is not None,
                                  value=session.truncation),
            self.note: ss.model_note(g),
            self.grid: self.page(session, start, "Edited", False, 1),
            self.first: page_start(start), self.mode: "copy",
            self.view: "Edited", self.highlight: False,
            self.result: NO_RESULT, self.comparison_img: gr.update(value=None, visible=False),
            self.pictures: gr.Tabs(selected="paint"),
            self.compared: None, self.pending: None, self.search_gal: None, self.found: [],
        }

    def edited_page(self, st, start) -> str:
        """The grid from `start` on the session's edited model (after an Execute)."""
        return self.page(current(st), start, "Edited", False, 1)

    def after_executing(self, event: gr.events.Dependency) -> list[gr.events.Dependency]:
        """Once an Execute's result is on screen (brought into view), redraw the grid on the
        edited model and measure how far the rule reaches; the steps from the event to its
        measures kept."""
        event.success(self.edited_page, [self.state, self.first], self.grid,
                      js=show_result("#pictures"), **PRIVATE, **AFTER)
        return [event, *self.after_changing(event)]

    def after_changing(self, event: gr.events.Dependency) -> list[gr.events.Dependency]:
        """Once an edit (or its strength) is on screen, measure it: the figures fill the result
        text, then join the edit's metrics in the session if it still holds that edit (the
        steps that measure and keep)."""
        measure = event.success(measure_pending, [self.pending, self.compared],
                                [self.result, self.advice_b, self.measured],
                                show_progress_on=self.result, **PRIVATE, **AFTER)
        return [measure, measure.success(keep_measures, [self.state, self.measured],
                                         self.state, **PRIVATE)]

    def loaded(self, session: ss.Session, request, start) -> dict:
        """A loaded request's selections (drawn on the grid from `start`) and settings, ready
        to Execute."""
        return {
            **self.chosen.show(session), self.grid: self.page(session, start, "Edited", False, 1),
            self.layer_dd: session.layer, self.rank: request.rank,
            self.method: request.method,
            self.reg: request.regularization or DEFAULT_REGULARIZATION,
            self.erase_n: request.erase or DEFAULT_ERASE_CHANNELS,
            self.trunc: gr.skip() if session.truncation is None else session.truncation,
        }

    def executed(self, session: ss.Session, request, progress) -> dict:
        """Apply the request and show its result: history, numbers, before/after;
        `edited_page` then redraws the grid for the new edits. The latest edit again (a second
        click, the same example twice) is refused: it would stack twice."""
        deltas = session.stack.deltas
        if deltas and same_edit(deltas[-1].request, request.to_json()):
            raise RewritingError(f"this edit is already applied (edit {len(deltas)}): change "
                                 "the selections first, or move its strength slider")
        done, shown, pending = apply_edit(session, request, progress)
        progress(1.0, desc="Rendering before and after")
        with one_thread():
            picture = ss.comparison(done, shown)
        return {
            self.state: done, **self.edits(done), self.view: "Edited", self.highlight: False,
            self.result: stacked_note(session) + solved_text(
                len(done.stack.deltas), done.stack.deltas[-1].metrics, len(shown.numbers)),
            self.pending: pending,
            self.comparison_img: gr.update(value=image_file(np.asarray(picture)), visible=True),
            self.compared: shown,
            self.pictures: gr.Tabs(selected="compare"), self.tabs: gr.Tabs(selected="result"),
            self.search_gal: None, self.found: [], self.advice_b: gr.update(visible=False),
        }


#: What makes two requests the same edit whatever settings the search chose for them.
SELECTION_KEYS = ("model", "copy", "paste", "context", "erase", "method", "object", "key")


def same_edit(applied: dict, asked: dict) -> bool:
    """Whether a request asks for the edit already applied from `applied` (the same selections
    and method; layer, rank and strength may have been chosen for it)."""
    return all(applied.get(k) == asked.get(k) for k in SELECTION_KEYS)
