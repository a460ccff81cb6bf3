"""The hidden API: `sample`, `execute` and `revert`, the engine's JSON request in, metrics out."""

import gradio as gr

from rewriting.errors import RewritingError
from rewriting.limits import MAX_APP_SAMPLES, parse_json, parse_samples
from rewriting.request import parse_request

from . import session as ss
from .handlers import PROGRESS, api_errors, as_number, current, on_gpu, tiles
from .page import apply_edit
from .settings import EDIT


def api_endpoints(state: gr.State) -> None:
    """The `sample`, `execute` and `revert` endpoints on hidden components."""
    with gr.Column(visible=False):
        api_samples = gr.Textbox("0-7")
        api_edited = gr.Checkbox(True)
        api_request = gr.Textbox()
        api_index = gr.Textbox("0")
        api_info = gr.JSON()
        api_images = gr.Gallery(format="png")
        api_sample_b, api_execute_b, api_revert_b = gr.Button(), gr.Button(), gr.Button()

    @api_errors
    def api_sample(text, edited, st):
        """Render samples ("0-15", "3,5,9") of this session's model, edited or original."""
        session = current(st)
        if not isinstance(edited, bool):
            raise RewritingError(f"edited must be true or false, got {edited!r}")
        numbers = parse_samples(text, MAX_APP_SAMPLES)
        return session, tiles(numbers, ss.samples(session, numbers, edited), size=0), {
            "model": session.generator.name, "samples": numbers,
            "edits": ss.history(session), "edited": edited,
        }

    @on_gpu
    @api_errors
    def api_execute(text, st, progress=PROGRESS):
        """Execute an edit request (the engine's JSON) on top of this session's edits.

        A request for another model moves a session without edits to that model.
        """
        session = current(st)
        request = parse_request(parse_json(text, "the request"), latents=session.latents)
        if request.model != session.generator.name and not session.stack.deltas:
            session = ss.Session.start(request.model)
        if request.layer is not None:  # the statistics are those of the request's layer
            session = session.with_layer(request.layer)
        edited, shown, pending = apply_edit(session, request, progress)
        metrics = ss.measure(pending)
        done = ss.with_measures(edited, pending, metrics)
        numbers = list(shown.numbers)
        images = tiles(numbers, ss.samples(session, numbers), lambda n: " before", 0)
        images += tiles(numbers, ss.samples(done, numbers), lambda n: " after", 0)
        return done, {**metrics, "edits": len(done.stack.deltas), "samples": numbers}, images

    @api_errors
    def api_revert(index, st):
        """Revert this session's edit number `index` (0-based)."""
        session = current(st).reverted(as_number(index, "the edit number"))
        return session, {"edits": ss.history(session)}

    api_sample_b.click(api_sample, [api_samples, api_edited, state],
                       [state, api_images, api_info], api_name="sample")
    api_execute_b.click(api_execute, [api_request, state], [state, api_info, api_images],
                        api_name="execute", **EDIT)
    api_revert_b.click(api_revert, [api_index, state], [state, api_info], api_name="revert")
