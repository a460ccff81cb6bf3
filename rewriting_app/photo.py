"""The photo UI: project a visitor's photo into the model, show it, brush it into the edit."""

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from rewriting.errors import RewritingError
from rewriting.photo import check_crop, default_crop, open_photo, parse_crop, prepare, show_crop
from rewriting.project import STEPS, Projection, project, render_latent

from .brush_events import painted
from .handlers import PROGRESS, as_number, canvas_value, current, friendly
from .page import Selections
from .panels import brush_editor
from .pictures import enlarge
from .session import PHOTO, Session
from .settings import CANVAS_PX, HEAVY, MAX_PHOTO_STEPS, PRIVATE

#: Sessions (by Gradio's session hash) whose visitor pressed Cancel during a projection.
CANCELLED: set[str] = set()
#: Sessions (by Gradio's session hash) whose projection is running now.
PROJECTING: set[str] = set()
STOPPED = "Projection cancelled: the photo was not changed."
NOTHING_TO_STOP = "No projection is running now: the photo was not changed."


def photo_steps(value: object) -> int:
    """The projection's steps from the Steps field, a whole number brought into 1 to
    MAX_PHOTO_STEPS with a warning in words when it was outside."""
    count = as_number(value, "the number of steps")
    kept = min(max(count, 1), MAX_PHOTO_STEPS)
    if kept != count:
        gr.Warning(f"steps go from 1 to {MAX_PHOTO_STEPS}; using {kept}")
    return kept


def cancel_projection(session_hash: str) -> str:
    """Stop the session's running projection at its next step; what the visitor is told."""
    CANCELLED.add(session_hash)
    return STOPPED if session_hash in PROJECTING else NOTHING_TO_STOP


@dataclass(eq=False)
class PhotoBrush:
    """The projected photo's brush canvas and the buttons that make it a sample of the edit."""

    latent: gr.State
    editor: gr.ImageEditor
    paste_b: gr.Button
    context_b: gr.Button


def photo_panel(state: gr.State) -> PhotoBrush:
    """"Your photo": project an upload into the model, show it under the original and the
    visitor's edited model side by side (re-rendered whenever the edits change), and a brush
    canvas on it for using it as the paste or a context sample."""
    with gr.Accordion("Your photo", open=False, elem_id="photo-panel"):
        gr.Markdown(
            "Upload a photo: the model's latent that best reproduces it is searched (the crop, "
            "resized to the model's size), then rendered by the original model and by yours."
        )
        latent = gr.State(None)
        with gr.Row():
            upload = gr.Image(type="filepath", sources=["upload"], label="Photo",
                              elem_id="photo-upload", height=256)
            shown_crop = gr.Image(label="Crop used", interactive=False, elem_id="photo-crop",
                                  height=256)
        with gr.Row():
            crop_tb = gr.Textbox(label="Crop LEFT,TOP,SIDE in photo pixels (empty: around the "
                                 "face for a face model, else the centred square)",
                                 elem_id="photo-crop-box")
            steps = gr.Number(STEPS, label=f"Steps (1 to {MAX_PHOTO_STEPS})", precision=0,
                              elem_id="photo-steps")
            project_b = gr.Button("Project my photo", variant="primary", elem_id="photo-project")
            cancel_b = gr.Button("Cancel", elem_id="photo-cancel")
        with gr.Row():
            original = gr.Image(label="Original model", interactive=False,
                                elem_id="photo-original", format="png")
            edited = gr.Image(label="Your edited model", interactive=False,
                              elem_id="photo-edited", format="png")
        info = gr.Markdown(elem_id="photo-info")
        photo_editor = brush_editor("Your photo (original model): paint a region, then use it "
                                    "in the edit", "photo-editor")
        with gr.Row():
            paste_b = gr.Button("Use as paste sample", elem_id="photo-use-paste")
            context_b = gr.Button("Add as context", elem_id="photo-add-context")

        @friendly
        def run_projection(path, crop_text, n, st, request: gr.Request, progress=PROGRESS):
            CANCELLED.discard(request.session_hash)
            PROJECTING.add(request.session_hash)
            try:
                return projected(current(st), path, crop_text, n, request.session_hash,
                                 progress)
            finally:
                PROJECTING.discard(request.session_hash)

        def cancel(request: gr.Request) -> str:
            return cancel_projection(request.session_hash)

        @friendly
        def rerender(st, projection):
            return side_by_side(current(st), projection)

        event = project_b.click(run_projection, [upload, crop_tb, steps, state],
                                [latent, shown_crop, original, edited, info, photo_editor],
                                show_progress_on=info, **PRIVATE, **HEAVY)
        cancel_b.click(cancel, None, info, cancels=[event], **PRIVATE)
        state.change(rerender, [state, latent], [original, edited], **PRIVATE)
    return PhotoBrush(latent, photo_editor, paste_b, context_b)


def side_by_side(session: Session, projection: Projection | None) -> tuple:
    """The projected photo rendered by the original model and by the visitor's edited model,
    enlarged (none while there is no projection on this model)."""
    if projection is None or projection.model != session.generator.name:
        return None, None
    g = session.generator
    pair = [render_latent(g, projection, session.weights(edited))[0].numpy()
            for edited in (False, True)]
    return tuple(enlarge(image, CANVAS_PX) for image in pair)


def projected(session: Session, path: str | None, crop_text: str, steps: object,
              session_hash: str, progress: gr.Progress) -> tuple:
    """Project the uploaded photo at `path` into the session's model (stopped at the next step
    once the visitor cancels): the projection, the crop used, the original and edited models'
    renders, its figures in words and a brush canvas on it."""
    if not path:
        raise RewritingError("upload a photo first")
    photo = open_photo(path)
    crop, how = ((check_crop(photo, parse_crop(crop_text)), "given") if crop_text
                 else default_crop(photo, session.generator.face_framing))
    count = photo_steps(steps)

    def report(done: int, total: int) -> None:
        if session_hash in CANCELLED:
            raise RewritingError(STOPPED)
        progress((done, total), desc="projection steps", unit="steps")

    target = prepare(photo, session.generator.image_size, crop)
    projection = project(session.generator, target, steps=count, progress=report)
    m = projection.metrics
    text = (f"Projected into **{projection.model}** (crop {crop}, {how}) in {m['seconds']:.1f} s: "
            f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f} (the model's mean image: "
            f"{m['psnr_mean_image']:.2f} dB, SSIM {m['ssim_mean_image']:.3f}).")
    pair = side_by_side(session, projection)  # original model's, edited model's
    return (projection, enlarge(show_crop(photo, crop), CANVAS_PX), *pair, text,
            canvas_value(pair[0]))


def photo_brush_events(photo: PhotoBrush, chosen: Selections) -> None:
    """The projected photo as the paste or one more context sample (brushed on its canvas)."""

    def use(role: str) -> Callable:
        @friendly
        def keep(value, st, projection):
            if projection is None:
                raise RewritingError("project a photo first, then paint on it")
            return chosen.show(painted(current(st).with_photo(projection.named()), value, role,
                                       PHOTO))

        return keep

    for button, role in ((photo.paste_b, "paste"), (photo.context_b, "context")):
        button.click(use(role), [photo.editor, chosen.state, photo.latent], chosen.outputs(),
                     **PRIVATE)
