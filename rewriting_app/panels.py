"""The page's layout: one small function per panel, returning the components its events use."""

from dataclasses import dataclass

import gradio as gr

from rewriting.request import DEFAULT_ERASE_CHANNELS, MAX_STRENGTH
from rewriting.rewrite import DEFAULT_STRENGTH
from rewriting.solve import DEFAULT_REGULARIZATION

from .example_pictures import example_thumbnail
from .fields import WordedSlider
from .page import Selections
from .paint_grid import CSS_TEMPLATE, MODES, SCRIPT, TEMPLATE
from .publish_policy import ON_SPACE, publish_help, publishing_allowed
from .sentences import model_choices
from .settings import (
    BRUSH_COLOR,
    CANVAS_PX,
    DEFAULT_MODEL,
    EXAMPLES,
    EXAMPLES_DIR,
    NO_RESULT,
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
            gr.Button(label, elem_id=f"example-{i}", size="md", min_width=120,
                      icon=str(example_thumbnail(EXAMPLES_DIR / EXAMPLES[label])))
            for i, label in enumerate(EXAMPLES)
        ]
        execute_b = gr.Button("Execute", variant="primary", elem_id="execute", min_width=120)
        erase_b = gr.Button("Erase what is marked green", elem_id="erase", min_width=120)
    return examples, execute_b, erase_b


def result_panel() -> tuple[gr.Markdown, gr.Slider, gr.Button]:
    """What the latest edit did: its verdict in words (exact figures folded), its strength and
    the button that redoes it as the verdict advises."""
    result = gr.Markdown(NO_RESULT, elem_id="result", container=True, min_height=60)
    with gr.Row(equal_height=True):
        strength = WordedSlider(0, MAX_STRENGTH / 2, value=DEFAULT_STRENGTH, step=0.1,
                                elem_id="strength", scale=3,
                                label="Strength of the latest edit (0 turns it off; nothing "
                                      "is solved again)")
        advice = gr.Button("Try the advice", elem_id="apply-advice", visible=False, scale=1)
    return result, strength, advice


def comparison_picture() -> gr.Image:
    """The latest edit's before/after picture, beside its verdict."""
    return gr.Image(label="The samples where the rule applies most, before and after",
                    show_label=False, interactive=False, format="png", elem_id="comparison",
                    buttons=["download", "fullscreen"], visible=False)


def advanced_settings() -> tuple[gr.Slider, gr.Radio, gr.Number, gr.Slider, gr.Checkbox]:
    """The Advanced accordion: rank, method, regularization, channels to erase, and whether the
    tool chooses layer, rank and strength for each edit."""
    with gr.Accordion("Advanced", open=False), gr.Row():
        auto = gr.Checkbox(True, label="Choose layer, rank and strength for each edit (tries a "
                           "few on samples of their own, about 5 s)", elem_id="auto")
        rank = WordedSlider(1, 16, value=1, step=1, label="Rank of the update", elem_id="rank")
        method = gr.Radio([("rank-r (the paper)", "rank"), ("dense (whole layer)",
                          "dense")], value="rank", label="Method")
        reg = gr.Number(DEFAULT_REGULARIZATION, label="Regularization",
                        elem_id="regularization")
        erase_n = WordedSlider(1, 128, value=DEFAULT_ERASE_CHANNELS, step=1,
                               label="Channels to erase", elem_id="erase-channels")
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
class PaintPanel:
    """The brush's mode, the grid of samples it paints on, paging and how samples are shown."""

    mode: gr.Radio
    grid: gr.HTML
    prev_b: gr.Button
    first: gr.Number
    next_b: gr.Button
    view: gr.Radio
    highlight: gr.Checkbox


def paint_panel() -> PaintPanel:
    """The grid of samples a visitor paints on, the brush's mode above it, paging below."""
    mode = gr.Radio([(label, key) for key, (label, _) in MODES.items()], value="copy",
                    label="The brush marks (it moves on by itself after each stroke)",
                    elem_id="mode", container=False)
    grid = gr.HTML(None, html_template=TEMPLATE, css_template=CSS_TEMPLATE, js_on_load=SCRIPT,
                   elem_id="paint")
    with gr.Row():
        prev_b = gr.Button("< Previous", size="sm", min_width=70, elem_id="previous")
        first = gr.Number(0, label="Samples from #", precision=0, elem_id="page-start",
                          min_width=90)
        next_b = gr.Button("Next >", size="sm", min_width=70, elem_id="next")
        view = gr.Radio([("Your model", "Edited"), ("The original", "Original")],
                        value="Edited", label="Show", elem_id="view", min_width=150)
        highlight = gr.Checkbox(False, label="Show where the rule applies",
                                elem_id="highlight", min_width=150)
    return PaintPanel(mode, grid, prev_b, first, next_b, view, highlight)


def found_gallery() -> gr.Gallery:
    """The Best matches tab: the samples where the context fires most."""
    return gr.Gallery(
        label="Where the rule applies most (click one to paint on it)", columns=4,
        height="auto", allow_preview=False, format="png", elem_id="found",
        elem_classes="thumb",
    )


@dataclass(eq=False)
class SelectionsTab:
    """The selections, and the buttons that remove them, search and suggest a layer."""

    chosen: Selections
    remove_b: gr.Button
    clear_b: gr.Button
    search_b: gr.Button
    suggest_b: gr.Button


def selections_tab(state: gr.State, tray_pick: gr.State) -> SelectionsTab:
    """What the brush has marked so far, as thumbnails, and what to do with it."""
    with gr.Row():
        copy_img = gr.Image(label="Copied", interactive=False, height=120,
                            elem_classes="thumb", elem_id="copied", min_width=80)
        paste_img = gr.Image(label="Where it goes", interactive=False, height=120,
                             elem_classes="thumb", elem_id="pasted", min_width=80)
        preview_img = gr.Image(label="What the rule should make", interactive=False,
                               height=120, elem_classes="thumb", elem_id="preview", min_width=80)
    tray = gr.Gallery(label="Where the rule applies (click one, then Remove)", columns=4,
                      height=130, allow_preview=False, format="png", fit_columns=False,
                      elem_id="tray", elem_classes="thumb")
    chosen = Selections(state, copy_img, paste_img, preview_img, tray, tray_pick)
    with gr.Row():
        remove_b = gr.Button("Remove the picked place", size="sm", elem_id="remove")
        clear_b = gr.Button("Clear everything marked", size="sm", elem_id="clear")
    with gr.Row():
        search_b = gr.Button(f"Find more places like these ({len(SEARCH_SAMPLES)} samples)",
                             elem_id="search", size="sm")
        suggest_b = gr.Button("Suggest a layer", elem_id="suggest", size="sm")
    return SelectionsTab(chosen, remove_b, clear_b, search_b, suggest_b)


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
            save_b = gr.Button("Save what you marked as a request (JSON)",
                               elem_id="save-request")
            load_b = gr.UploadButton("Load a request JSON (ours or the paper's)",
                                     file_types=[".json"], elem_id="load-request")
            delta_b = gr.Button("Download the latest edit's change", elem_id="download-delta")
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
