"""The page's layout: one small function per panel, returning the components its events use."""

from dataclasses import dataclass

import gradio as gr

from rewriting.request import DEFAULT_ERASE_CHANNELS, MAX_STRENGTH
from rewriting.rewrite import DEFAULT_STRENGTH
from rewriting.solve import DEFAULT_REGULARIZATION

from .brush_events import store
from .handlers import canvas
from .page import Selections
from .publish_policy import ON_SPACE, publish_help, publishing_allowed
from .sentences import model_choices
from .settings import (
    BRUSH_COLOR,
    CANVAS_PX,
    DEFAULT_MODEL,
    EXAMPLES,
    NO_RESULT,
    PRIVATE,
    SEARCH_SAMPLES,
)


def brush_editor(label: str, elem_id: str, value: dict | None = None) -> gr.ImageEditor:
    """A brush canvas: paint a region in the brush colour on a fixed-size picture."""
    return gr.ImageEditor(
        value, image_mode="RGBA", type="numpy", format="png", sources=(), transforms=(),
        layers=False, fixed_canvas=True, canvas_size=(CANVAS_PX, CANVAS_PX), label=label,
        elem_id=elem_id, height=330, interactive=True,
        brush=gr.Brush(default_size=16, colors=[BRUSH_COLOR], color_mode="fixed"),
    )


def action_bar() -> tuple[list[gr.Button], gr.Button, gr.Button]:
    """The top row: one button per example (loads and executes it), Execute and Erase."""
    with gr.Row(elem_id="actions", equal_height=True):
        examples = [
            gr.Button(label, elem_id=f"example-{i}", size="md", min_width=120)
            for i, label in enumerate(EXAMPLES)
        ]
        execute_b = gr.Button("Execute", variant="primary", elem_id="execute", min_width=120)
        erase_b = gr.Button("Erase what is under Paste", elem_id="erase", min_width=120)
    return examples, execute_b, erase_b


def result_panel() -> tuple[gr.Markdown, gr.Image, gr.Slider, gr.Button]:
    """What the latest edit did: its verdict and numbers, the before/after picture, its
    strength, and the button that redoes it as the verdict advises."""
    picture = gr.Image(label="Where the rule fires most: before, after, change x4, zoomed",
                       show_label=False, interactive=False, format="png", elem_id="comparison",
                       buttons=["download", "fullscreen"], visible=False)
    result = gr.Markdown(NO_RESULT, elem_id="result", container=True, min_height=60)
    advice = gr.Button("Try the advice", elem_id="apply-advice", visible=False)
    strength = gr.Slider(0, MAX_STRENGTH / 2, value=DEFAULT_STRENGTH, step=0.1,
                         elem_id="strength",
                         label="Strength of the latest edit (re-renders without solving)")
    return result, picture, strength, advice


def advanced_settings() -> tuple[gr.Slider, gr.Radio, gr.Number, gr.Slider, gr.Checkbox]:
    """The Advanced accordion: rank, method, regularization, channels to erase, and whether the
    tool chooses layer, rank and strength for each edit."""
    with gr.Accordion("Advanced", open=False), gr.Row():
        auto = gr.Checkbox(True, label="Choose layer, rank and strength for each edit (tries a "
                           "few on samples of their own, about 5 s)", elem_id="auto")
        rank = gr.Slider(1, 16, value=1, step=1, label="Rank of the update")
        method = gr.Radio([("rank-r (the paper)", "rank"), ("dense (whole layer)",
                          "dense")], value="rank", label="Method")
        reg = gr.Number(DEFAULT_REGULARIZATION, label="Regularization",
                        elem_id="regularization")
        erase_n = gr.Slider(1, 128, value=DEFAULT_ERASE_CHANNELS, step=1,
                            label="Channels to erase")
    return rank, method, reg, erase_n, auto


def model_pickers() -> tuple[gr.Dropdown, gr.Dropdown, gr.Slider, gr.Markdown]:
    """The row of model, layer and truncation pickers, and the note on the model under it."""
    with gr.Row(equal_height=True):
        model_dd = gr.Dropdown(
            model_choices(), value=DEFAULT_MODEL,
            label="Model (or type hub:OWNER/NAME: an edit published here)",
            elem_id="model", scale=2, allow_custom_value=True, min_width=320,
        )
        layer_dd = gr.Dropdown([], label="Layer to rewrite", elem_id="layer", scale=2,
                               min_width=320)
        trunc = gr.Slider(0, 1, step=0.05, label="Truncation", visible=False, scale=1)
    return model_dd, layer_dd, trunc, gr.Markdown(elem_id="note")


@dataclass(eq=False)
class SamplesTab:
    """The gallery of samples, its paging, the sample to open and how samples are shown."""

    gallery: gr.Gallery
    prev_b: gr.Button
    first: gr.Number
    next_b: gr.Button
    number: gr.Number
    view: gr.Radio
    highlight: gr.Checkbox


def samples_tab() -> SamplesTab:
    """The Samples tab: a page of samples, paging and the view options."""
    gallery = gr.Gallery(
        label="Samples: click one to open it in the brush canvas",
        columns=6, height="auto", allow_preview=False, format="png",
        elem_id="gallery", fit_columns=False, elem_classes="thumb",
        show_label=False,
    )
    with gr.Row():
        prev_b = gr.Button("< Previous page", size="sm", min_width=80)
        first = gr.Number(0, label="Page starts at sample", precision=0,
                          elem_id="page-start", min_width=80)
        next_b = gr.Button("Next page >", size="sm", min_width=80)
        number = gr.Number(0, label="Open sample # in the canvas",
                           precision=0, elem_id="open-number", min_width=80)
    with gr.Row():
        view = gr.Radio(["Edited", "Original"], value="Edited",
                        label="Show the model", elem_id="view")
        highlight = gr.Checkbox(
            False, label="Highlight context matches",
            info="where the context key fires (99th percentile)",
            elem_id="highlight",
        )
    return SamplesTab(gallery, prev_b, first, next_b, number, view, highlight)


def found_gallery() -> gr.Gallery:
    """The Best matches tab: the samples where the context key fires most."""
    return gr.Gallery(
        label="Best context matches (click one to open it)", columns=6,
        height="auto", allow_preview=False, format="png", elem_id="found",
        elem_classes="thumb",
    )


@dataclass(eq=False)
class BrushColumn:
    """The brush canvas's ticket, the selections and the column's buttons."""

    canvas_key: gr.State
    chosen: Selections
    remove_b: gr.Button
    clear_b: gr.Button
    search_b: gr.Button
    suggest_b: gr.Button


def brush_column(state: gr.State, number: gr.Number, view: gr.Radio,
                 tray_pick: gr.State) -> BrushColumn:
    """The brush canvas (redrawn on each new ticket), the selections and their buttons."""
    with gr.Column(scale=2, min_width=300, elem_id="brush-column"):
        canvas_key = gr.State("")

        @gr.render(inputs=[state, number, view], triggers=[canvas_key.change])
        def brush_panel(session, n, shown):
            # A fresh canvas per opened sample: Gradio's ImageEditor can hang when its
            # value is replaced while it still uploads the visitor's last strokes.
            if session is None:
                return
            n = int(n or 0)
            edited = shown != "Original"
            gr.Markdown(f"**Sample #{n}** ({'edited' if edited else 'original'} model): "
                        "paint over a region, then press **Copy**, **Paste** or "
                        "**Context**.", elem_id="canvas-title")
            editor = brush_editor("Brush canvas", "editor", canvas(session, n, edited))
            with gr.Row():
                for label, role, elem_id in (("Copy", "copy", "copy"),
                                             ("Paste", "paste", "paste"),
                                             ("Context", "context", "context-add")):
                    gr.Button(label, elem_id=elem_id, min_width=60).click(
                        store(chosen, role, n), [editor, state], chosen.outputs(), **PRIVATE
                    )

        with gr.Row():
            copy_img = gr.Image(label="Copied", interactive=False, height=130,
                                elem_classes="thumb", elem_id="copied", min_width=80)
            paste_img = gr.Image(label="Paste here", interactive=False, height=130,
                                 elem_classes="thumb", elem_id="pasted", min_width=80)
            preview_img = gr.Image(label="Goal preview", interactive=False, height=130,
                                   elem_classes="thumb", elem_id="preview", min_width=80)
        tray = gr.Gallery(label="Context: where the rule applies (click one, then Remove)",
                          columns=6, height=130, allow_preview=False, format="png",
                          fit_columns=False, elem_id="tray", elem_classes="thumb")
        chosen = Selections(state, copy_img, paste_img, preview_img, tray, tray_pick)
        with gr.Row():
            remove_b = gr.Button("Remove selected context", size="sm")
            clear_b = gr.Button("Clear all selections", size="sm")
        with gr.Row():
            search_b = gr.Button(f"Search {len(SEARCH_SAMPLES)} samples for the context",
                                 elem_id="search", size="sm")
            suggest_b = gr.Button("Suggest a layer", elem_id="suggest", size="sm")
    return BrushColumn(canvas_key, chosen, remove_b, clear_b, search_b, suggest_b)


def history_panel() -> tuple[gr.Markdown, gr.Dropdown, gr.Button]:
    """The edit history and the picker and button that revert one edit."""
    with gr.Row():
        with gr.Column(scale=2):
            gr.Markdown("### Edit history")
            history = gr.Markdown(elem_id="history")
        with gr.Column():
            revert_dd = gr.Dropdown([], label="Edit to revert", elem_id="revert-pick")
            revert_b = gr.Button("Revert this edit", elem_id="revert")
    return history, revert_dd, revert_b


@dataclass(eq=False)
class FilesPanel:
    """The Save, load and download accordion's buttons and the files they produce."""

    save_stack_b: gr.Button
    load_stack_b: gr.UploadButton
    save_b: gr.Button
    load_b: gr.UploadButton
    delta_b: gr.Button
    weights_b: gr.Button
    files: gr.File


def files_panel() -> FilesPanel:
    """Save and load all edits or a request; download the latest delta or the weights."""
    with gr.Accordion("Save, load and download", open=False):
        with gr.Row():
            save_stack_b = gr.Button("Save all edits (one file)", elem_id="save-edits")
            load_stack_b = gr.UploadButton("Load an edits file", elem_id="load-edits",
                                           file_types=[".safetensors"])
            save_b = gr.Button("Save the selections as a request (JSON)")
            load_b = gr.UploadButton("Load a request JSON (ours or the paper's)",
                                     file_types=[".json"], elem_id="load-request")
            delta_b = gr.Button("Download last edit's delta")
            weights_b = gr.Button("Download full edited weights", elem_id="download-weights")
        files = gr.File(label="Files", interactive=False, height=120, elem_id="files")
    return FilesPanel(save_stack_b, load_stack_b, save_b, load_b, delta_b, weights_b, files)


@dataclass(eq=False)
class PublishPanel:
    """The Publish accordion's fields, its button and where it reports."""

    repo_tb: gr.Textbox
    private_cb: gr.Checkbox
    delta_cb: gr.Checkbox
    exist_cb: gr.Checkbox
    publish_b: gr.Button
    published: gr.Markdown


def publish_panel() -> PublishPanel:
    """Publish the edits to a Hub repository (a login button on a Space)."""
    with gr.Accordion("Publish to the Hugging Face Hub", open=False):
        gr.Markdown(publish_help(), elem_id="publish-help")
        with gr.Row():
            if ON_SPACE:
                gr.LoginButton()
            repo_tb = gr.Textbox(label="Repository", placeholder="OWNER/NAME", scale=2)
            private_cb = gr.Checkbox(False, label="Private")
            delta_cb = gr.Checkbox(False, label="Delta only (loading fetches the base)")
            exist_cb = gr.Checkbox(False, label="Add to an existing repository")
        publish_b = gr.Button("Publish these edits", elem_id="publish",
                              interactive=publishing_allowed())
        published = gr.Markdown()
    return PublishPanel(repo_tb, private_cb, delta_cb, exist_cb, publish_b, published)
