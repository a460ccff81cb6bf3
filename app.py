"""Rewrite a generator's rule with the brush: copy, paste, context, execute (the paper's tool).

`python app.py` serves on 127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT change it)
and starts on the embedded default model without any network. Each visitor's state is a
`zoo.session.Session` in gr.State: an EditStack of deltas on a model that the registry loads
once and shares read-only, so one visitor's edits never change what another one sees.
Outside a Space, publishing to the Hub is off unless the app is started with
REWRITING_ALLOW_PUBLISH=1 (it would use this machine's token for every visitor).
"""

import atexit
import functools
import hashlib
import io
import itertools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder
from huggingface_hub import get_token
from PIL import Image

from rewriting.atomic import write_atomically
from rewriting.errors import RewritingError, one_line
from rewriting.limits import (
    MAX_APP_SAMPLES,
    MAX_SAMPLE_NUMBER,
    parse_json,
    parse_samples,
    read_json_file,
)
from rewriting.request import DEFAULT_ERASE_CHANNELS, MAX_STRENGTH, Selection, parse_request
from rewriting.solve import DEFAULT_REGULARIZATION
from rewriting.suggest import layer_table
from zoo import session as ss
from zoo.registry import list_models

DEFAULT_MODEL = "dcgan-digiface"
PAGE = 24
SEARCH_SAMPLES = range(256)
SEARCH_SHOWN = 12
COMPARE_SHOWN = 8
CANVAS_PX = 256
TILE_PX = 128
BRUSH_COLOR = "rgba(255, 0, 200, 0.55)"
#: Seconds a rendered picture or a download stays in Gradio's cache.
CACHE_AGE = 3600
#: Handlers that report progress take this default; Gradio hands each call its own tracker.
PROGRESS = gr.Progress()
#: A new value each time the brush canvas must be rebuilt.
CANVAS_TICKETS = itertools.count()

# Concurrency on a 2-core CPU: torch already uses both cores for one forward pass, so running
# heavy work side by side only slows each down. Heavy events (execute, erase, search, the
# first-time statistics) share one worker (concurrency_id "heavy", limit 1) and queue behind one
# another; light events (paging, opening a sample, storing a brush mask, previews) get their
# own two workers, so one visitor's long edit never freezes the page for the others.
HEAVY = {"concurrency_id": "heavy", "concurrency_limit": 1}
LIGHT_LIMIT = 2
QUEUE_SIZE = 64

INTRO = """
# Rewriting a Deep Generative Model
Change a *rule* of a pretrained image generator by example (Bau et al., ECCV 2020):

1. **Copy**: click a sample, paint over a part of it (say an eye) in the brush canvas, press
   **Copy**.
2. **Paste**: open another sample, paint where that part should go, press **Paste**. The goal
   preview shows what you ask for.
3. **Context**: paint the kind of place where the new rule applies (say mouths) on a few samples,
   pressing **Context** each time.
4. **Execute**: the generator's weights change so that *every* such place follows the new rule.
   Compare before and after, switch between the original and the edited model, revert any edit.
"""

#: Running as a Hugging Face Space: publishing then goes through the visitor's own login.
ON_SPACE = bool(os.environ.get("SPACE_ID"))
#: Elsewhere every visitor would publish with this machine's token: off unless this is "1".
ALLOW_PUBLISH = "REWRITING_ALLOW_PUBLISH"
PUBLISH_OFF = (
    "publishing is off in this app: outside a Space it would upload with this machine's Hub "
    f"token for any visitor; whoever starts the app can allow it with {ALLOW_PUBLISH}=1"
)

#: Example requests for the embedded model, chosen for a rule change visible at a glance.
EXAMPLES = {
    "Glasses onto eyes (8 context samples)": "glasses-onto-eyes.json",
    "Open mouth (painted masks)": "open-mouth.json",
    "Eyes onto the mouth (2 context samples)": "eye-to-mouth.json",
}
EXAMPLES_DIR = Path(__file__).parent / "examples"
NO_RESULT = "Execute or Erase to change the model; what the edit did is reported here."

CSS = """
#editor canvas { cursor: crosshair; }
.thumb img { image-rendering: pixelated; }
"""


def friendly(fn: Callable) -> Callable:
    """Show an engine error as a warning in the page and update nothing: state stays as it was."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RewritingError as err:
            gr.Warning(one_line(err))
            return gr.skip()

    return wrapper


def api_errors(fn: Callable) -> Callable:
    """Give an API client the engine's message as the call's error; its state stays as it was."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RewritingError as err:
            raise gr.Error(one_line(err), print_exception=False) from None

    return wrapper


def page_start(start: float | None) -> int:
    """The first sample of a gallery page: `start` clamped so that the whole page exists."""
    return min(max(0, int(start or 0)), MAX_SAMPLE_NUMBER + 1 - PAGE)


def whole_number(value: object, what: str) -> int:
    """An integer from an API call (a number or its text), or a clear error."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise RewritingError(f"{what} must be a whole number, got {value!r}") from None
    return number


def current(state: ss.Session | None) -> ss.Session:
    """The visitor's session; API clients and new tabs start on the default model."""
    return state if state is not None else ss.Session.start(DEFAULT_MODEL)


def tiles(
    numbers: Sequence[int], images: np.ndarray, extra: Callable[[int], str] = lambda n: "",
    size: int = TILE_PX,
) -> list[tuple[np.ndarray, str]]:
    """Gallery items captioned with their sample numbers, enlarged to at least `size` px."""
    pairs = zip(numbers, images, strict=True)
    return [(image_file(ss.enlarge(im, size)), f"#{n}{extra(n)}") for n, im in pairs]


@functools.cache
def gallery_dir() -> Path:
    """This process's folder of rendered gallery images in Gradio's cache, removed when the app
    exits (or, after a crash, swept with stale download folders)."""
    folder = download_dir()
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def image_file(image: np.ndarray) -> str:
    """The image as a PNG named by its content, written atomically.

    Gradio caches an array output by rewriting a file named by its content in place, so a
    visitor fetching the same picture at that moment (two visitors viewing the same samples)
    could read it half-written; a finished file handed over is copied atomically instead.
    """
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    data = buffer.getvalue()
    path = gallery_dir() / f"{hashlib.sha256(data).hexdigest()[:40]}.png"
    if not path.exists():
        write_atomically(path, lambda tmp: Path(tmp).write_bytes(data))
    return str(path)


def canvas(session: ss.Session, number: int) -> dict:
    """An ImageEditor value: the sample (under the visitor's edits), enlarged, no strokes."""
    image = ss.samples(session, [number])[0]
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], -1)
    return {"background": ss.enlarge(rgba, CANVAS_PX), "layers": [], "composite": None}


def publishing_allowed() -> bool:
    """On a Space (visitors sign in), or where whoever started the app set ALLOW_PUBLISH=1."""
    return ON_SPACE or os.environ.get(ALLOW_PUBLISH) == "1"


def publish_help() -> str:
    """What the Publish panel says: how publishing works here, or that it is off."""
    what = (
        "Push your edits, all of them as one stack (the full edited weights, or only the "
        "deltas), each with its request and before/after picture, and a model card that lists "
        "every rule, to a Hub repository in one commit. Loading it back as `hub:OWNER/NAME` "
        "restores the stack: any one edit can still be reverted. "
    )
    if ON_SPACE:
        return what + "Sign in first; the upload uses your account."
    if publishing_allowed():
        return what + "Uses the token of `HF_TOKEN` or of `hf auth login` on this machine."
    return (
        f"**Publishing is off.** Outside a Space it would upload with this machine's Hub token "
        f"for any visitor, so it must be allowed by whoever starts the app: "
        f"`{ALLOW_PUBLISH}=1 python app.py`. `python -m rewriting push` publishes from a shell."
    )


def hub_token(oauth: gr.OAuthToken | None) -> str | None:
    """Whose token publishes: the signed-in visitor's on a Space, the local one otherwise.

    On a Space the environment's token belongs to the Space's owner, so it is never used for a
    visitor's upload; elsewhere the local token is used only where publishing was allowed at
    start. The token is passed on to the Hub client and never shown or stored.
    """
    if not publishing_allowed():
        raise RewritingError(PUBLISH_OFF)
    if ON_SPACE:
        if oauth is None:
            raise RewritingError("sign in with Hugging Face (the button above) to publish")
        return oauth.token
    return os.environ.get("HF_TOKEN") or get_token()


def download_dir() -> Path:
    """A new folder for one download, inside Gradio's cache, which deletes the files the app
    served once they are `CACHE_AGE` old; older download folders (of an app that was stopped
    before that, or emptied) go too."""
    cache = Path(get_upload_folder())
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob("rewriting-*"):
        try:
            if time.time() - old.stat().st_mtime > CACHE_AGE:
                shutil.rmtree(old)
        except OSError:  # another app's folder, deleted meanwhile
            continue
    return Path(tempfile.mkdtemp(prefix="rewriting-", dir=cache))


def build() -> gr.Blocks:
    """The app's page and its events."""
    models = [m.name for m in list_models() if m.unsupported is None]
    # Rendered pictures and downloads in Gradio's cache are deleted after an hour.
    with gr.Blocks(title="Rewriting a Deep Generative Model",
                   delete_cache=(CACHE_AGE // 2, CACHE_AGE)) as demo:
        state = gr.State(None)
        found = gr.State([])
        tray_pick = gr.State(None)
        gr.Markdown(INTRO)
        with gr.Row():
            model_dd = gr.Dropdown(
                [(f"{m} (embedded)" if m == DEFAULT_MODEL else m, m) for m in models],
                value=DEFAULT_MODEL, label="Model (or type hub:OWNER/NAME: an edit published here)",
                elem_id="model", scale=2, allow_custom_value=True,
            )
            layer_dd = gr.Dropdown([], label="Layer to rewrite", elem_id="layer", scale=2)
            trunc = gr.Slider(0, 1, step=0.05, label="Truncation", visible=False, scale=1)
        note = gr.Markdown()
        with gr.Row():
            with gr.Column(scale=3):
                gallery = gr.Gallery(
                    label="Samples: click one to open it in the brush canvas", columns=6,
                    height="auto", allow_preview=False, format="png", elem_id="gallery",
                    fit_columns=False,
                    elem_classes="thumb",
                )
                with gr.Row():
                    prev_b = gr.Button("< Previous page", size="sm")
                    first = gr.Number(0, label="Page starts at sample", precision=0,
                                      elem_id="page-start")
                    next_b = gr.Button("Next page >", size="sm")
                    number = gr.Number(0, label="Open sample # in the canvas", precision=0,
                                       elem_id="open-number")
                with gr.Row():
                    view = gr.Radio(["Edited", "Original"], value="Edited",
                                    label="Show the model", elem_id="view")
                    highlight = gr.Checkbox(False, label="Highlight context matches",
                                            info="where the context key fires (99th percentile)",
                                            elem_id="highlight")
            with gr.Column(scale=2):
                canvas_key = gr.State("")

                @gr.render(inputs=[state, number], triggers=[canvas_key.change])
                def brush_panel(session, n):
                    # A fresh canvas per opened sample: Gradio's ImageEditor can hang when its
                    # value is replaced while it still uploads the visitor's last strokes.
                    if session is None:
                        return
                    n = int(n or 0)
                    gr.Markdown(f"**Sample #{n}**: paint over a region, then press **Copy**, "
                                "**Paste** or **Context**.")
                    editor = gr.ImageEditor(
                        canvas(session, n), image_mode="RGBA", type="numpy", format="png",
                        sources=(), transforms=(), layers=False, fixed_canvas=True,
                        canvas_size=(CANVAS_PX, CANVAS_PX), label="Brush canvas",
                        brush=gr.Brush(default_size=16, colors=[BRUSH_COLOR], color_mode="fixed"),
                        elem_id="editor", height=330, interactive=True,
                    )
                    with gr.Row():
                        for label, role, elem_id in (("Copy", "copy", "copy"),
                                                     ("Paste", "paste", "paste"),
                                                     ("Context", "context", "context-add")):
                            gr.Button(label, elem_id=elem_id).click(
                                store(role, n), [editor, state], chosen, **private
                            )

                with gr.Row():
                    copy_img = gr.Image(label="Copied", interactive=False, height=130,
                                        elem_classes="thumb", elem_id="copied")
                    paste_img = gr.Image(label="Paste here", interactive=False, height=130,
                                         elem_classes="thumb", elem_id="pasted")
                    preview_img = gr.Image(label="Goal preview", interactive=False, height=130,
                                           elem_classes="thumb", elem_id="preview")
                tray = gr.Gallery(label="Context: where the rule applies (click one, then Remove)",
                                  columns=6, height=130, allow_preview=False, format="png",
                                  fit_columns=False, elem_id="tray", elem_classes="thumb")
                with gr.Row():
                    remove_b = gr.Button("Remove selected context", size="sm")
                    clear_b = gr.Button("Clear all selections", size="sm")
        with gr.Row():
            execute_b = gr.Button("Execute", variant="primary", elem_id="execute", scale=2)
            erase_b = gr.Button("Erase what is under Paste (no Copy needed)", elem_id="erase")
            search_b = gr.Button(f"Search {len(SEARCH_SAMPLES)} samples for the context",
                                 elem_id="search")
            suggest_b = gr.Button("Suggest a layer", elem_id="suggest")
            example_dd = gr.Dropdown(list(EXAMPLES), value=None, elem_id="example",
                                     label=f"Load an example ({DEFAULT_MODEL})")
        with gr.Accordion("Advanced", open=False):
            with gr.Row():
                rank = gr.Slider(1, 16, value=1, step=1, label="Rank of the update")
                method = gr.Radio([("rank-r (the paper)", "rank"), ("dense (whole layer)",
                                  "dense")], value="rank", label="Method")
                reg = gr.Number(DEFAULT_REGULARIZATION, label="Regularization",
                                elem_id="regularization")
                erase_n = gr.Slider(1, 128, value=DEFAULT_ERASE_CHANNELS, step=1,
                                    label="Channels to erase")
        result = gr.Markdown(NO_RESULT, elem_id="result", container=True, min_height=60)
        strength = gr.Slider(0, MAX_STRENGTH / 2, value=1, step=0.1, elem_id="strength",
                             label="Strength of the latest edit (re-renders without solving)")
        compared = gr.State([])
        before = gr.Gallery(label="Before the edit", columns=COMPARE_SHOWN, height=200,
                            allow_preview=False, fit_columns=False, format="png", elem_id="before",
                            elem_classes="thumb", visible=False)
        after = gr.Gallery(label="After the edit", columns=COMPARE_SHOWN, height=200,
                           allow_preview=False, fit_columns=False, format="png", elem_id="after",
                           elem_classes="thumb", visible=False)
        search_gal = gr.Gallery(label="Best context matches (click one to open it)", columns=6,
                                height="auto", allow_preview=False, format="png",
                                elem_id="found", elem_classes="thumb", visible=False)
        with gr.Row():
            with gr.Column(scale=2):
                gr.Markdown("### Edit history")
                history = gr.Markdown(elem_id="history")
            with gr.Column():
                revert_dd = gr.Dropdown([], label="Edit to revert", elem_id="revert-pick")
                revert_b = gr.Button("Revert this edit", elem_id="revert")
        with gr.Accordion("Save, load and download", open=False):
            with gr.Row():
                save_b = gr.Button("Save edit as JSON")
                load_b = gr.UploadButton("Load edit JSON (ours or the paper's)",
                                         file_types=[".json"])
                delta_b = gr.Button("Download last edit's delta")
                weights_b = gr.Button("Download full edited weights", elem_id="download-weights")
            files = gr.File(label="Files", interactive=False, height=120)
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
        with gr.Column(visible=False):
            api_samples = gr.Textbox("0-7")
            api_edited = gr.Checkbox(True)
            api_request = gr.Textbox()
            api_index = gr.Textbox("0")
            api_info = gr.JSON()
            api_images = gr.Gallery(format="png")
            api_sample_b, api_execute_b, api_revert_b = gr.Button(), gr.Button(), gr.Button()

        # ---- what the page shows, from a session -------------------------------------------
        def page(session, start, shown, marks, r) -> list:
            numbers = list(range(page_start(start), page_start(start) + PAGE))
            images = ss.samples(session, numbers, shown != "Original")
            if marks:
                key, threshold = ss.probe(session, ss.statistics(session), int(r))
                images = ss.tint(images, ss.matches(session, key, threshold, numbers), 0.45)
            return tiles(numbers, images)

        def selections(session) -> dict:
            def thumb(selection):
                if selection is None:
                    return None
                return ss.enlarge(ss.selection_image(session, selection), TILE_PX)

            both = session.copy is not None and session.paste is not None
            return {
                state: session,
                copy_img: thumb(session.copy),
                paste_img: thumb(session.paste),
                preview_img: ss.enlarge(ss.paste_preview(session), TILE_PX) if both else None,
                tray: [(thumb(s), f"#{s.sample}") for s in session.context],
                tray_pick: None,
            }

        def edits(session) -> dict:
            lines = ss.history(session)
            latest = len(lines) - 1 if lines else None
            return {
                history: "\n".join(lines) or "No edits yet: you are looking at the original model.",
                revert_dd: gr.update(choices=[(t, i) for i, t in enumerate(lines)], value=latest),
            }

        def everything(session, start, n) -> dict:
            g = session.generator
            return {
                **selections(session), **edits(session),
                model_dd: g.name,
                layer_dd: gr.update(choices=ss.layer_choices(g), value=session.layer),
                trunc: gr.update(visible=g.default_truncation is not None,
                                 value=session.truncation),
                note: ss.model_note(g),
                gallery: page(session, start, "Edited", False, 1),
                view: "Edited", highlight: False,
                **opened(session, n),
                result: NO_RESULT, before: gr.update(visible=False),
                after: gr.update(visible=False),
            }

        def opened(session, n) -> dict:
            return {number: int(n), canvas_key: next(CANVAS_TICKETS)}

        # ---- handlers ------------------------------------------------------------------------
        @friendly
        def on_load(st, start, n):
            return everything(current(st), start, n)

        def pick_model(name, st, progress=PROGRESS):
            try:
                session = ss.Session.start(name, lambda f, msg: progress(f, desc=msg))
                return everything(session, 0, 0)
            except RewritingError as err:
                gr.Warning(str(err))
                return {model_dd: current(st).generator.name}

        @friendly
        def pick_layer(name, st, start, shown, marks, r):
            session = current(st).with_layer(name)
            return {**selections(session), gallery: page(session, start, shown, marks, r)}

        @friendly
        def pick_truncation(value, st, start, shown, n):
            session = current(st).with_truncation(value)
            return {**selections(session), **opened(session, n),
                    gallery: page(session, start, shown, False, 1), highlight: False}

        def show_page(st, start, shown, marks, r):
            if page_start(start) != int(start or 0):
                gr.Warning(f"pages start at samples 0 to {page_start(MAX_SAMPLE_NUMBER)}; "
                           f"showing the page from {page_start(start)}")
            try:
                return {gallery: page(current(st), start, shown, marks, r),
                        first: page_start(start)}
            except RewritingError as err:
                gr.Warning(one_line(err))
                return {highlight: False, first: page_start(start)}

        def step(delta):
            def move(st, start, shown, marks, r):
                return show_page(st, page_start(page_start(start) + delta), shown, marks, r)

            return move

        @friendly
        def open_clicked(evt: gr.SelectData, st, start):
            return opened(current(st), page_start(start) + evt.index)

        @friendly
        def open_found(evt: gr.SelectData, st, numbers):
            return opened(current(st), numbers[evt.index])

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
            return opened(session, n)

        def store(role, n):
            @friendly
            def keep(value, st):
                session = current(st)
                mask = ss.brush_mask((value or {}).get("layers") or [])
                selection = Selection(n, ss.mask_url(mask))
                return selections(session.with_selection(role, selection))

            return keep

        @friendly
        def pick_tray(evt: gr.SelectData):
            return evt.index

        @friendly
        def remove(st, index):
            return selections(current(st).without_context(-1 if index is None else index))

        @friendly
        def clear(st):
            session = current(st)
            return selections(ss.Session(session.stack, session.layer, session.truncation))

        def run(erase: bool):
            @friendly
            def go(st, r, m, lam, channels, start, progress=PROGRESS):
                session = current(st)
                request = session.request(int(r), m, lam, int(channels) if erase else None)
                done, metrics, numbers, old, new = apply(session, request, progress)
                return {
                    state: done, **edits(done),
                    gallery: page(done, start, "Edited", False, 1), view: "Edited",
                    highlight: False,
                    result: ss.result_text(len(done.stack.deltas), metrics, len(numbers)),
                    canvas_key: next(CANVAS_TICKETS),
                    before: gr.update(value=tiles(numbers, old), visible=True),
                    after: gr.update(value=tiles(numbers, new), visible=True),
                    strength: done.stack.deltas[-1].strength, compared: numbers,
                }

            return go

        @friendly
        def rescale(st, s, start, numbers):
            session = current(st).with_strength(float(s))
            edited = {after: gr.update(value=tiles(numbers, ss.samples(session, numbers)))}
            return {
                state: session, gallery: page(session, start, "Edited", False, 1),
                view: "Edited", highlight: False, canvas_key: next(CANVAS_TICKETS),
                result: f"Edit {len(session.stack.deltas)} now at strength {float(s):g} "
                "(the solved update times the strength; nothing solved again).",
                **(edited if numbers else {}),
            }

        @friendly
        def suggest_now(st, r, m, lam, start, progress=PROGRESS):
            session = current(st)
            progress(0.0, desc="Solving at every layer (statistics: first time only)")
            suggestion = ss.suggest(session, session.request(int(r), m, lam))
            session = session.with_layer(suggestion.layer)
            return {
                **selections(session), layer_dd: suggestion.layer,
                gallery: page(session, start, "Edited", False, 1),
                result: f"Suggested layer **{suggestion.layer}** (best generalisation among "
                f"specific layers):\n```\n{layer_table(suggestion)}\n```",
            }

        def apply(session, request, progress):
            def report(done: int, total: int) -> None:
                progress(done / total, desc=f"Key statistics of {session.layer} "
                         f"(first time only): {done}/{total} samples")

            stats = ss.statistics(session, report)
            progress(1.0, desc="Solving for the new weights")
            done, metrics = ss.run_edit(session, request, stats)
            numbers, old, new = ss.most_changed(session, done, COMPARE_SHOWN)
            return done, metrics, numbers, old, new

        @friendly
        def revert_picked(st, index, start, shown):
            if index is None:
                raise RewritingError("there is no edit to revert")
            session = current(st).reverted(int(index))
            return {
                state: session, **edits(session), gallery: page(session, start, shown, False, 1),
                highlight: False, result: f"Edit {int(index) + 1} reverted.",
                canvas_key: next(CANVAS_TICKETS), before: gr.update(visible=False),
                after: gr.update(visible=False),
            }

        @friendly
        def find(st, r, progress=PROGRESS):
            session = current(st)
            stats = ss.statistics(session, lambda d, t: progress(d / t, desc="Key statistics"))
            key, threshold = ss.probe(session, stats, int(r))
            best = ss.search(session, key, SEARCH_SAMPLES, SEARCH_SHOWN)
            numbers = [n for n, _ in best]
            images = ss.tint(ss.samples(session, numbers),
                             ss.matches(session, key, threshold, numbers), 0.45)
            score = dict(best)
            return {search_gal: gr.update(visible=True, value=tiles(
                numbers, images, lambda n: f" · {score[n]:.2f}")), found: numbers}

        @friendly
        def save_json(st, r, m, lam):
            session = current(st)
            if session.paste is not None and session.copy is not None:
                data = session.request(int(r), m, lam).to_json()
            elif session.stack.deltas:
                data = session.stack.deltas[-1].request
            else:
                raise RewritingError("nothing to save: make a Copy and a Paste selection first")
            path = download_dir() / "edit.json"
            path.write_text(json.dumps(data, indent=2) + "\n")
            return str(path)

        @friendly
        def load_json(path, st):
            session, request = current(st).loaded(read_json_file(path, "edit file"))
            return {
                **selections(session), layer_dd: session.layer, rank: request.rank,
                method: request.method, reg: request.regularization or DEFAULT_REGULARIZATION,
                erase_n: request.erase or DEFAULT_ERASE_CHANNELS,
                trunc: gr.skip() if session.truncation is None else session.truncation,
            }

        @friendly
        def load_example(name, st):
            return load_json(EXAMPLES_DIR / EXAMPLES[name], st)

        @friendly
        def download_delta(st):
            return str(ss.save_delta(current(st), -1, download_dir()))

        @friendly
        def download_weights(st, progress=PROGRESS):
            progress(0.5, desc="Writing the edited weights")
            return str(ss.save_weights(current(st), download_dir()))

        @friendly
        def publish_now(st, repo, private, delta_only, exist_ok,
                        oauth: gr.OAuthToken | None = None, progress=PROGRESS):
            token = hub_token(oauth)  # refuses first where publishing is not allowed
            with tempfile.TemporaryDirectory(prefix="rewriting-publish-") as staging:
                url = ss.publish_edit(
                    current(st), repo, token, Path(staging), private, delta_only, exist_ok,
                    lambda f, msg: progress(f, desc=msg),
                )
            name, count = repo.strip(), len(current(st).stack.deltas)
            return (f"Published {count} edit{'s' if count > 1 else ''} in one commit: "
                    f"[{url}]({url}). Load it here by typing `hub:{name}` as the model, or "
                    f"`python -m rewriting sample --model hub:{name}`.")

        # ---- API: the engine's JSON request in, metrics and images out -----------------------
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

        @api_errors
        def api_execute(text, st, progress=PROGRESS):
            """Execute an edit request (the engine's JSON) on top of this session's edits.

            A request for another model moves a session without edits to that model.
            """
            session = current(st)
            request = parse_request(parse_json(text, "the request"))
            if request.model != session.generator.name and not session.stack.deltas:
                session = ss.Session.start(request.model)
            done, metrics, numbers, old, new = apply(session, request, progress)
            images = tiles(numbers, old, lambda n: " before", 0)
            images += tiles(numbers, new, lambda n: " after", 0)
            return done, {**metrics, "edits": len(done.stack.deltas), "samples": numbers}, images

        @api_errors
        def api_revert(index, st):
            """Revert this session's edit number `index` (0-based)."""
            session = current(st).reverted(whole_number(index, "the edit number"))
            return session, {"edits": ss.history(session)}

        # ---- wiring ----------------------------------------------------------------------------
        view_args = [state, first, view, highlight, rank]
        every = [state, model_dd, layer_dd, trunc, note, gallery, view, highlight, number,
                 canvas_key, copy_img, paste_img, preview_img, tray, tray_pick,
                 history, revert_dd, result, before, after]
        chosen = [state, copy_img, paste_img, preview_img, tray, tray_pick]
        private = {"api_visibility": "private"}

        demo.load(on_load, [state, first, number], every, **private)
        model_dd.input(pick_model, [model_dd, state], every, show_progress_on=note,
                       **private, **HEAVY)
        layer_dd.input(pick_layer, [layer_dd, *view_args], [*chosen, gallery], **private)
        trunc.release(pick_truncation, [trunc, state, first, view, number],
                      [*chosen, gallery, highlight, number, canvas_key], **private)
        for trigger in (first.submit, view.input, highlight.input):
            trigger(show_page, view_args, [gallery, first, highlight], **private)
        prev_b.click(step(-PAGE), view_args, [gallery, first, highlight], **private)
        next_b.click(step(PAGE), view_args, [gallery, first, highlight], **private)
        shown_canvas = [number, canvas_key]
        gallery.select(open_clicked, [state, first], shown_canvas, **private)
        search_gal.select(open_found, [state, found], shown_canvas, **private)
        number.submit(open_number, [state, number], shown_canvas, **private)
        tray.select(pick_tray, None, tray_pick, **private)
        remove_b.click(remove, [state, tray_pick], chosen, **private)
        clear_b.click(clear, [state], chosen, **private)
        run_out = [state, history, revert_dd, gallery, view, highlight, result, before, after,
                   canvas_key, strength, compared]
        execute_b.click(run(False), [state, rank, method, reg, erase_n, first], run_out,
                        show_progress_on=result, **private, **HEAVY)
        erase_b.click(run(True), [state, rank, method, reg, erase_n, first], run_out,
                      show_progress_on=result, **private, **HEAVY)
        revert_b.click(revert_picked, [state, revert_dd, first, view],
                       [state, history, revert_dd, gallery, highlight, result, before, after,
                        canvas_key],
                       **private)
        search_b.click(find, [state, rank], [search_gal, found], show_progress_on=result,
                       **private, **HEAVY)
        strength.release(rescale, [state, strength, first, compared],
                         [state, gallery, view, highlight, canvas_key, result, after], **private)
        suggest_b.click(suggest_now, [state, rank, method, reg, first],
                        [*chosen, layer_dd, gallery, result], show_progress_on=result,
                        **private, **HEAVY)
        save_b.click(save_json, [state, rank, method, reg], files, **private)
        loaded_out = [*chosen, layer_dd, trunc, rank, method, reg, erase_n]
        load_b.upload(load_json, [load_b, state], loaded_out, **private)
        example_dd.input(load_example, [example_dd, state], loaded_out, **private)
        delta_b.click(download_delta, [state], files, **private)
        weights_b.click(download_weights, [state], files, **private, **HEAVY)
        publish_b.click(publish_now, [state, repo_tb, private_cb, delta_cb, exist_cb], published,
                        show_progress_on=published, **private, **HEAVY)
        api_sample_b.click(api_sample, [api_samples, api_edited, state],
                           [state, api_images, api_info], api_name="sample")
        api_execute_b.click(api_execute, [api_request, state], [state, api_info, api_images],
                            api_name="execute", **HEAVY)
        api_revert_b.click(api_revert, [api_index, state], [state, api_info], api_name="revert")
    return demo


if __name__ == "__main__":
    build().queue(default_concurrency_limit=LIGHT_LIMIT, max_size=QUEUE_SIZE).launch(css=CSS)
