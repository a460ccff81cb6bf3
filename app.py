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
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder
from huggingface_hub import get_token
from PIL import Image

from rewriting.atomic import write_atomically
from rewriting.delta import load_stack
from rewriting.errors import RewritingError, one_line
from rewriting.limits import (
    MAX_APP_SAMPLES,
    MAX_JSON_DEPTH,
    MAX_SAMPLE_NUMBER,
    parse_json,
    parse_samples,
    read_json_file,
)
from rewriting.request import (
    DEFAULT_ERASE_CHANNELS,
    MAX_STRENGTH,
    EditRequest,
    Selection,
    parse_request,
)
from rewriting.rewrite import DEFAULT_STRENGTH
from rewriting.solve import DEFAULT_REGULARIZATION
from rewriting.suggest import layer_table
from rewriting.threads import one_thread
from zoo import session as ss
from zoo.fetch import availability
from zoo.registry import list_models, model_entry

try:  # Hugging Face's ZeroGPU helper: installed on Spaces, absent elsewhere.
    import spaces
except ImportError:
    spaces = None

DEFAULT_MODEL = "dcgan-digiface"
PAGE = 24
SEARCH_SAMPLES = range(256)
SEARCH_SHOWN = 12
COMPARE_SHOWN = 6
CANVAS_PX = 256
TILE_PX = 128
BRUSH_COLOR = "rgba(255, 0, 200, 0.55)"
#: Seconds a rendered picture or a download stays in Gradio's cache.
CACHE_AGE = 3600
#: Handlers that report progress take this default; Gradio hands each call its own tracker.
PROGRESS = gr.Progress()
#: A new value each time the brush canvas must be rebuilt.
CANVAS_TICKETS = itertools.count()

# Concurrency on a 2-core CPU: torch already uses both cores for one large forward pass, so
# running heavy work side by side only slows each down. Heavy events (search, a model's load,
# downloads, publishing) share one worker (concurrency_id "heavy", limit 1) and queue behind one
# another. An edit (execute, erase, an example) is small work run on one thread (`one_thread`),
# and edits run one at a time (concurrency_id "edit"): side by side they contend for the
# interpreter and each takes longer. What follows an edit's picture (the gallery behind its tab
# and the edit's measures) runs one at a time on the other core (concurrency_id "after"), so
# that it never delays other visitors' pictures for long. Light events (paging, opening a
# sample, storing a brush mask, previews) get their own two workers, so one visitor's long edit
# never freezes the page for the others.
HEAVY = {"concurrency_id": "heavy", "concurrency_limit": 1}
EDIT = {"concurrency_id": "edit", "concurrency_limit": 1}
AFTER = {"concurrency_id": "after", "concurrency_limit": 1}
LIGHT_LIMIT = 2
QUEUE_SIZE = 64

INTRO = """
# Rewriting a Deep Generative Model
Change a *rule* of a pretrained image generator by example (Bau et al., ECCV 2020). Try an
example, or make your own: click a sample, paint a part of it and press **Copy**; paint where it
should go on another sample, **Paste**; paint a few places where the rule applies, **Context**
each; then **Execute**. The generator's weights change, so *every* such place follows the rule.
"""

#: Running as a Hugging Face Space: publishing then goes through the visitor's own login.
ON_SPACE = bool(os.environ.get("SPACE_ID"))
#: Elsewhere every visitor would publish with this machine's token: off unless this is "1".
ALLOW_PUBLISH = "REWRITING_ALLOW_PUBLISH"
PUBLISH_OFF = (
    "publishing is off in this app: outside a Space it would upload with this machine's Hub "
    f"token for any visitor; whoever starts the app can allow it with {ALLOW_PUBLISH}=1"
)

EXAMPLES_DIR = Path(__file__).parent / "examples"
#: Example requests for the embedded model, chosen for a rule change visible at a glance:
#: button label -> request file, in the page's order (the app benchmark clicks the same).
EXAMPLES = json.loads((EXAMPLES_DIR / "buttons.json").read_text())
NO_RESULT = "Execute or Erase to change the model; what the edit did is reported here."

CSS = """
#editor canvas { cursor: crosshair; }
.thumb img { image-rendering: pixelated; }
#model input, #layer input { text-overflow: ellipsis; }
#comparison img { max-height: 470px; object-fit: contain; }
.thumb .grid-container {
  grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important;
}
@media (max-width: 640px) {
  #gallery .grid-container, #found .grid-container { --grid-cols: 4 !important; }
}
"""
#: Where the visitor's session is kept in the browser (localStorage), and the key Gradio
#: scrambles it with: not a secret (the page holds it), fixed so that a restart keeps it readable.
BROWSER_KEY = "rewriting-session"
BROWSER_SECRET = "rewriting-a-deep-generative-model"
#: On a narrow screen the brush canvas is below the gallery: bring it into view on a click.
SHOW_CANVAS = """(...inputs) => { if (window.innerWidth < 700)
  document.querySelector('#brush-column')?.scrollIntoView({behavior: 'smooth'});
  return inputs; }"""


#: Seconds of GPU a heavy handler may hold on a ZeroGPU Space (the first statistics included).
GPU_SECONDS = 120


def on_gpu(fn: Callable) -> Callable:
    """ZeroGPU's `spaces.GPU` on a handler that runs the generator where the `spaces` package
    is installed (it changes nothing off ZeroGPU); the handler itself elsewhere (CPU)."""
    return fn if spaces is None else spaces.GPU(duration=GPU_SECONDS)(fn)


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


def as_number(value: object, what: str, kind: type[int] | type[float] = int) -> int | float:
    """A number of `kind` (whole by default) from a page or an API call (a number or its text),
    or a clear error."""
    try:
        return kind(str(value).strip())
    except ValueError:
        words = "a whole number" if kind is int else "a number"
        raise RewritingError(f"{what} must be {words}, got {value!r}") from None


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
    """The image as a PNG named by its pixels, written atomically (once: the same pixels again
    are not encoded again).

    Gradio caches an array output by rewriting a file named by its content in place, so a
    visitor fetching the same picture at that moment (two visitors viewing the same samples)
    could read it half-written; a finished file handed over is copied atomically instead.
    """
    pixels = np.ascontiguousarray(image)
    named = hashlib.sha256(f"{pixels.shape}{pixels.dtype.str}".encode())
    named.update(pixels.data)
    path = gallery_dir() / f"{named.hexdigest()[:40]}.png"
    if not path.exists():
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)  # fast, ~20% larger
        write_atomically(path, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
    return str(path)


def canvas(session: ss.Session, number: int, edited: bool = True) -> dict:
    """An ImageEditor value: the sample (with or without the visitor's edits), enlarged, no
    strokes."""
    return canvas_value(ss.samples(session, [number], edited)[0])


def canvas_value(image: np.ndarray) -> dict:
    """An ImageEditor value: `image` [H, W, 3] enlarged, opaque, no strokes."""
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], -1)
    return {"background": image_file(ss.enlarge(rgba, CANVAS_PX)), "layers": [],
            "composite": None}


def brush_editor(label: str, elem_id: str, value: dict | None = None) -> gr.ImageEditor:
    """A brush canvas: paint a region in the brush colour on a fixed-size picture."""
    return gr.ImageEditor(
        value, image_mode="RGBA", type="numpy", format="png", sources=(), transforms=(),
        layers=False, fixed_canvas=True, canvas_size=(CANVAS_PX, CANVAS_PX), label=label,
        elem_id=elem_id, height=330, interactive=True,
        brush=gr.Brush(default_size=16, colors=[BRUSH_COLOR], color_mode="fixed"),
    )


def publishing_allowed() -> bool:
    """On a Space (visitors sign in), or where whoever started the app set ALLOW_PUBLISH=1."""
    return ON_SPACE or os.environ.get(ALLOW_PUBLISH) == "1"


def publish_help() -> str:
    """What the Publish panel says: how publishing works here, or that it is off."""
    what = (
        "Push your edits, all of them as one stack (the full edited weights, or only the "
        "deltas), each with its request and before/after picture, and a model card that lists "
        "every rule, to a Hub repository in one commit. Loading it back as `hub:OWNER/NAME` "
        "restores the stack: any one edit can still be reverted. An edit made with your photo "
        "as a sample publishes the photo's latent, from which anyone can render its "
        "projection. "
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


def model_choices() -> list[tuple[str, str]]:
    """Model picker entries: each loadable catalog model, marked with whether its weights are
    here or need a download (and how large)."""
    return [(f"{m.name} ({'embedded' if m.name == DEFAULT_MODEL else availability(m)})", m.name)
            for m in list_models() if m.unsupported is None]


def load_failure(name: str, err: Exception) -> str:
    """What a visitor reads when a model does not load: the cause in their terms, without the
    server's paths or commands meant for whoever runs it (an error not the engine's, from a
    hostile repository's files, as just that)."""
    message = one_line(err) if isinstance(err, RewritingError) else "its files could not be used"
    try:
        entry = model_entry(name)
    except RewritingError:
        entry = None
    if entry is not None and availability(entry).startswith("download"):
        return (f"{name} could not be loaded: its weights are not on this server and it cannot "
                "download them now (it may be offline). Models marked embedded, installed or "
                "downloaded load without a download.")
    if "cannot be downloaded" in message or "cannot reach" in message:
        return f"{name} could not be loaded: this server cannot reach the Hugging Face Hub now."
    return f"{name} could not be loaded: {message}"


def distinct(components: Sequence[gr.components.Component]) -> list:
    """The components once each, in order (an event lists each output once)."""
    return list({id(c): c for c in components}.values())


#: Event settings of the page's own handlers: not offered to API clients.
PRIVATE = {"api_visibility": "private"}


def apply_edit(session: ss.Session, request: EditRequest, progress: gr.Progress) -> tuple:
    """Solve the request on the session's layer (first-time statistics reported as progress):
    the edited session, the samples to show and the measures still to make."""

    def report(done: int, total: int) -> None:
        progress(done / total, desc=f"Key statistics of {session.layer} "
                 f"(first time only): {done}/{total} samples")

    stats = ss.statistics(session, report)  # on every core, the first time
    progress(1.0, desc="Solving for the new weights")
    with one_thread():
        return ss.execute_shown(session, request, stats, COMPARE_SHOWN)


@on_gpu
@friendly
def measure_pending(pending: ss.Pending | None, shown: ss.Shown | None) -> tuple:
    """Measure an edit already on screen: the result text with its figures, and its metrics."""
    if pending is None:
        return gr.skip(), None
    metrics = ss.measure(pending)
    count = len(shown.numbers) if shown else 0
    return ss.result_text(len(pending.after.stack.deltas), metrics, count), (pending, metrics)


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
            return image_file(ss.enlarge(ss.selection_image(session, selection), TILE_PX))

        both = session.copy is not None and session.paste is not None
        return {
            self.state: session,
            self.copy_img: thumb(session.copy),
            self.paste_img: thumb(session.paste),
            self.preview_img: (image_file(ss.enlarge(ss.paste_preview(session), TILE_PX))
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
    gallery: gr.Gallery
    first: gr.Number
    number: gr.Number
    view: gr.Radio
    highlight: gr.Checkbox
    tabs: gr.Tabs
    search_gal: gr.Gallery
    found: gr.State
    canvas_key: gr.State
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

    def view_args(self) -> list:
        """The inputs a gallery page is drawn from."""
        return [self.state, self.first, self.view, self.highlight, self.rank]

    def every(self) -> list:
        """What `everything` updates."""
        return [self.state, self.model_dd, self.layer_dd, self.trunc, self.note, self.gallery,
                self.view, self.highlight, self.number, self.canvas_key,
                *self.chosen.outputs()[1:], self.history, self.revert_dd, self.strength,
                self.result, self.comparison_img, self.compared, self.pending, self.search_gal,
                self.found]

    def run_outputs(self) -> list:
        """What `executed` updates."""
        return [self.state, self.history, self.revert_dd, self.view,
                self.highlight, self.result, self.comparison_img, self.canvas_key,
                self.strength, self.compared, self.pending, self.tabs, self.search_gal,
                self.found]

    def loaded_outputs(self) -> list:
        """What `loaded` updates."""
        return [*self.chosen.outputs(), self.layer_dd, self.trunc, self.rank, self.method,
                self.reg, self.erase_n]

    def page(self, session: ss.Session, start, shown, marks, r) -> list:
        """The gallery page from `start`, edited or original, tinted where the context fires."""
        numbers = list(range(page_start(start), page_start(start) + PAGE))
        images = ss.samples(session, numbers, shown != "Original")
        if marks:
            key, threshold = ss.probe(session, ss.statistics(session), int(r))
            images = ss.tint(images, ss.matches(session, key, threshold, numbers), 0.45)
        return tiles(numbers, images)

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

    def opened(self, session: ss.Session, n) -> dict:
        """Open sample `n` in a fresh brush canvas."""
        return {self.number: int(n), self.canvas_key: next(CANVAS_TICKETS)}

    def everything(self, session: ss.Session, start, n) -> dict:
        """The whole page redrawn for a session (a new one, a loaded one, another model)."""
        g = session.generator
        return {
            **self.chosen.show(session), **self.edits(session),
            self.model_dd: gr.update(choices=model_choices(), value=g.name),
            self.layer_dd: gr.update(choices=ss.layer_choices(g), value=session.layer),
            self.trunc: gr.update(visible=g.default_truncation is not None,
                                  value=session.truncation),
            self.note: ss.model_note(g),
            self.gallery: self.page(session, start, "Edited", False, 1),
            self.view: "Edited", self.highlight: False,
            **self.opened(session, n),
            self.result: NO_RESULT, self.comparison_img: gr.update(value=None, visible=False),
            self.compared: None, self.pending: None, self.search_gal: None, self.found: [],
        }

    def edited_page(self, st, start) -> list:
        """The gallery page from `start` of the session's edited model (after an Execute)."""
        return self.page(current(st), start, "Edited", False, 1)

    def after_executing(self, event: gr.events.Dependency) -> list[gr.events.Dependency]:
        """Once an Execute's result is on screen, draw the gallery behind its tab and measure
        how far the rule reaches; the steps from the event to its measures kept."""
        event.success(self.edited_page, [self.state, self.first], self.gallery, **PRIVATE,
                      **AFTER)
        return [event, *self.after_changing(event)]

    def after_changing(self, event: gr.events.Dependency) -> list[gr.events.Dependency]:
        """Once an edit (or its strength) is on screen, measure it: the figures fill the result
        text, then join the edit's metrics in the session if it still holds that edit (the
        steps that measure and keep)."""
        measure = event.success(measure_pending, [self.pending, self.compared],
                                [self.result, self.measured], show_progress_on=self.result,
                                **PRIVATE, **AFTER)
        return [measure, measure.success(keep_measures, [self.state, self.measured],
                                         self.state, **PRIVATE)]

    def loaded(self, session: ss.Session, request) -> dict:
        """A loaded request's selections and settings, ready to Execute."""
        return {
            **self.chosen.show(session), self.layer_dd: session.layer, self.rank: request.rank,
            self.method: request.method,
            self.reg: request.regularization or DEFAULT_REGULARIZATION,
            self.erase_n: request.erase or DEFAULT_ERASE_CHANNELS,
            self.trunc: gr.skip() if session.truncation is None else session.truncation,
        }

    def executed(self, session: ss.Session, request, progress) -> dict:
        """Apply the request and show its result: history, numbers, before/after (on screen);
        `edited_page` then draws the gallery (behind its tab) for the new edits."""
        applied = [i + 1 for i, d in enumerate(session.stack.deltas)
                   if d.request == request.to_json()]
        if applied:
            gr.Warning(f"the same edit as edit {applied[-1]}: it is now applied twice "
                       "(Revert undoes either)")
        done, shown, pending = apply_edit(session, request, progress)
        progress(1.0, desc="Rendering before and after")
        with one_thread():
            picture = ss.comparison(done, shown)
        return {
            self.state: done, **self.edits(done), self.view: "Edited", self.highlight: False,
            self.result: ss.solved_text(len(done.stack.deltas), done.stack.deltas[-1].metrics,
                                         len(shown.numbers)),
            self.pending: pending,
            self.canvas_key: next(CANVAS_TICKETS),
            self.comparison_img: gr.update(value=image_file(np.asarray(picture)), visible=True),
            self.compared: shown,
            self.tabs: gr.Tabs(selected="result"), self.search_gal: None, self.found: [],
        }


#: JavaScript run in the page as it opens: a session kept in this browser nested more than
#: MAX_JSON_DEPTH levels deep is handed over as a note instead, which the server refuses with a
#: warning (too deep for the server to read at all, it would fail the whole call and every
#: component would show an error).
SHALLOW_KEPT = f"""(st, start, n, kept) => {{
  const open = [[kept, 1]];
  while (open.length) {{
    const [item, depth] = open.pop();
    if (item === null || typeof item !== 'object') continue;
    if (depth > {MAX_JSON_DEPTH}) return [st, start, n, 'nested too deep'];
    for (const value of Object.values(item)) open.push([value, depth + 1]);
  }}
  return [st, start, n, kept];
}}"""
#: Most characters of a reason quoted in a warning (it may quote an untrusted value).
REASON_CHARS = 240


def restored(kept: object) -> ss.Session | None:
    """The session kept in this browser, or None (a fresh one) with a warning that says what
    was dropped: whatever the browser handed back, and whatever its model now is, the page
    opens."""
    try:
        session = ss.restore(kept)
    except Exception as err:  # untrusted, and its model may have changed since: start afresh
        why = (one_line(err)[:REASON_CHARS] if isinstance(err, RewritingError)
               else "they could not be used")
        gr.Warning(f"The edits and selections kept in this browser were dropped ({why}); "
                   "you start afresh on the original model.")
        return None
    if session.stack.deltas:
        gr.Info(f"Restored your {len(session.stack.deltas)} edit(s) from this browser.")
    return session


def session_events(demo: gr.Blocks, p: Page, saved: gr.BrowserState) -> None:
    """Open the page on the session kept in this browser; keep every change there."""

    @friendly
    def on_load(st, start, n, kept):
        if st is None and kept:
            st = restored(kept)
        return p.everything(current(st), start, n)

    def keep(st):
        return gr.skip() if st is None else ss.snapshot(st)

    demo.load(on_load, [p.state, p.first, p.number, saved], p.every(), js=SHALLOW_KEPT,
              **PRIVATE)
    p.state.change(keep, p.state, saved, **PRIVATE)


# ---- gallery: model, layer and truncation pickers; samples, paging, opening a sample ----------
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


# ---- brush and selections: canvas, copy/paste/context tray, search, suggest a layer -----------
def store(chosen: Selections, role: str, n: int) -> Callable:
    """A handler that keeps the painted mask on sample `n` as the Copy, Paste or a Context."""

    @friendly
    def keep(value, st):
        return chosen.show(painted(current(st), value, role, n))

    return keep


def painted(session: ss.Session, value: dict | None, role: str, sample: int | str) -> ss.Session:
    """The session with the mask painted on `sample` (an ImageEditor value) kept as the Copy,
    the Paste or one more Context."""
    mask = ss.brush_mask((value or {}).get("layers") or [])
    return session.with_selection(role, Selection(sample, ss.mask_url(mask)))


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


def tray_events(p: Page, remove_b: gr.Button, clear_b: gr.Button) -> None:
    """Picking a context in the tray, removing it, clearing all selections."""

    @friendly
    def pick_tray(evt: gr.SelectData):
        return evt.index

    @friendly
    def remove(st, index):
        if index is None:
            raise RewritingError("click a context example in the tray first, then Remove")
        return p.chosen.show(current(st).without_context(index))

    @friendly
    def clear(st):
        session = current(st)
        return p.chosen.show(ss.Session(session.stack, session.layer, session.truncation))

    p.chosen.tray.select(pick_tray, None, p.chosen.tray_pick, **PRIVATE)
    remove_b.click(remove, [p.state, p.chosen.tray_pick], p.chosen.outputs(), **PRIVATE)
    clear_b.click(clear, [p.state], p.chosen.outputs(), **PRIVATE)


def search_events(p: Page, search_b: gr.Button) -> None:
    """Search the samples where the context key fires most; show them under Best matches."""

    @on_gpu
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
        return {p.search_gal: tiles(numbers, images, lambda n: f" · {score[n]:.2f}"),
                p.found: numbers, p.tabs: gr.Tabs(selected="found")}

    search_b.click(find, [p.state, p.rank], [p.search_gal, p.found, p.tabs],
                   show_progress_on=p.search_gal, **PRIVATE, **HEAVY)


def suggest_events(p: Page, suggest_b: gr.Button) -> None:
    """Suggest the layer where the selections' rule generalises best, and switch to it."""

    @on_gpu
    @friendly
    def suggest_now(st, r, m, lam, start, progress=PROGRESS):
        session = current(st)
        progress(0.0, desc="Solving at every layer (statistics: first time only)")
        suggestion = ss.suggest(session, session.request(int(r), m, lam))
        session = session.with_layer(suggestion.layer)
        return {
            **p.chosen.show(session), p.layer_dd: suggestion.layer,
            p.gallery: p.page(session, start, "Edited", False, 1),
            p.result: f"Suggested layer **{suggestion.layer}** (best generalisation among "
            f"specific layers):\n```\n{layer_table(suggestion)}\n```",
        }

    suggest_b.click(suggest_now, [p.state, p.rank, p.method, p.reg, p.first],
                    [*p.chosen.outputs(), p.layer_dd, p.gallery, p.result],
                    show_progress_on=p.result, **PRIVATE, **HEAVY)


# ---- execute and results: examples, Execute, Erase; the result, its strength, before/after ----
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


def result_panel() -> tuple[gr.Markdown, gr.Image, gr.Slider]:
    """What the latest edit did: its numbers, the before/after picture, its strength."""
    picture = gr.Image(label="Where the rule fires most: before, after, change x4, zoomed",
                       show_label=False, interactive=False, format="png", elem_id="comparison",
                       buttons=["download", "fullscreen"], visible=False)
    result = gr.Markdown(NO_RESULT, elem_id="result", container=True, min_height=60)
    strength = gr.Slider(0, MAX_STRENGTH / 2, value=DEFAULT_STRENGTH, step=0.1,
                         elem_id="strength",
                         label="Strength of the latest edit (re-renders without solving)")
    return result, picture, strength


def advanced_settings() -> tuple[gr.Slider, gr.Radio, gr.Number, gr.Slider]:
    """The Advanced accordion: rank, method, regularization, channels to erase."""
    with gr.Accordion("Advanced", open=False), gr.Row():
        rank = gr.Slider(1, 16, value=1, step=1, label="Rank of the update")
        method = gr.Radio([("rank-r (the paper)", "rank"), ("dense (whole layer)",
                          "dense")], value="rank", label="Method")
        reg = gr.Number(DEFAULT_REGULARIZATION, label="Regularization",
                        elem_id="regularization")
        erase_n = gr.Slider(1, 128, value=DEFAULT_ERASE_CHANNELS, step=1,
                            label="Channels to erase")
    return rank, method, reg, erase_n


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
        def go(st, r, m, lam, channels, progress=PROGRESS):
            session = current(st)
            request = session.request(int(r), m, lam, int(channels) if erase else None)
            return p.executed(session, request, progress)

        return go

    settings = [p.state, p.rank, p.method, p.reg, p.erase_n]
    return [p.after_executing(button.click(run(erase), settings, p.run_outputs(),
                                           show_progress_on=p.result,
                                           js=edit_lock(buttons, True), **PRIVATE, **EDIT))
            for button, erase in ((execute_b, False), (erase_b, True))]


def example_events(p: Page, example_bs: list[gr.Button],
                   buttons: Sequence[gr.Button]) -> list[list[gr.events.Dependency]]:
    """Each example button loads its request (on the embedded model) and executes it; the
    `buttons` that edit are locked meanwhile (each edit's steps returned)."""

    def example(name: str):
        @on_gpu
        @friendly
        def load_and_execute(st, start, progress=PROGRESS):
            session, switched = current(st), {}
            if session.generator.name != DEFAULT_MODEL and not session.stack.deltas:
                # The examples are for the embedded model: a visitor without edits moves.
                session, start = ss.Session.start(DEFAULT_MODEL), 0
                switched = p.everything(session, start, 0)
            data = read_json_file(EXAMPLES_DIR / EXAMPLES[name], "example")
            session, request = session.loaded(data)
            done = p.executed(session, request, progress)
            with one_thread():
                selections = p.loaded(session, request)
            return {**switched, **selections, **done}

        return load_and_execute

    outputs = distinct([*p.every(), *p.loaded_outputs(), *p.run_outputs(), p.search_gal,
                        p.found])
    return [p.after_executing(button.click(example(name), [p.state, p.first], outputs,
                                           show_progress_on=p.comparison_img,
                                           js=edit_lock(buttons, True), **PRIVATE, **EDIT))
            for name, button in zip(EXAMPLES, example_bs, strict=True)]


def strength_events(p: Page) -> None:
    """Re-render the latest edit at the strength picked, without solving again."""

    @friendly
    def rescale(st, s, start, shown, pending):
        before = current(st)
        strength = as_number(s, "the strength", float)
        session = before.with_strength(strength)
        latest = pending is not None and pending.holds(before.stack.deltas[-1])
        # The before/after picture shows only right after an Execute (not after a reload or a
        # revert): then the gallery alone shows the new strength.
        picture = ({p.comparison_img: image_file(np.asarray(ss.comparison(session, shown)))}
                   if shown else {})
        return {
            p.state: session, p.gallery: p.page(session, start, "Edited", False, 1),
            p.view: "Edited", p.highlight: False, p.canvas_key: next(CANVAS_TICKETS),
            p.result: f"Edit {len(session.stack.deltas)} now at strength {strength:g} "
            "(the solved update times the strength; nothing solved again)"
            + (": measuring it again." if latest else "."),
            p.pending: pending.rescaled(session) if latest else None, **picture,
        }

    p.after_changing(p.strength.release(
        rescale, [p.state, p.strength, p.first, p.compared, p.pending],
        [p.state, p.gallery, p.view, p.highlight, p.canvas_key, p.result, p.comparison_img,
         p.pending],
        **PRIVATE))


# ---- history: the edits so far, reverting one ------------------------------------------------
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
            p.gallery: p.page(session, start, shown, False, 1),
            p.highlight: False, p.result: f"Edit {index + 1} reverted.",
            p.canvas_key: next(CANVAS_TICKETS),
            p.comparison_img: gr.update(value=None, visible=False), p.compared: None,
            p.pending: None, p.search_gal: None, p.found: [],
        }

    revert_b.click(revert_picked, [p.state, p.revert_dd, p.first, p.view],
                   [p.state, p.history, p.revert_dd, p.strength, p.gallery, p.highlight,
                    p.result, p.comparison_img, p.canvas_key, p.compared, p.pending,
                    p.search_gal, p.found],
                   **PRIVATE)


# ---- files: saving and loading edits and requests, downloads ----------------------------------
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
                                     file_types=[".json"])
            delta_b = gr.Button("Download last edit's delta")
            weights_b = gr.Button("Download full edited weights", elem_id="download-weights")
        files = gr.File(label="Files", interactive=False, height=120, elem_id="files")
    return FilesPanel(save_stack_b, load_stack_b, save_b, load_b, delta_b, weights_b, files)


def edit_file_events(p: Page, f: FilesPanel) -> None:
    """Save all edits as one file; load such a file (moving to its model)."""

    @friendly
    def save_edits(st):
        return str(ss.save_edits(current(st), download_dir()))

    @friendly
    def load_edits(path, st, start):
        deltas = load_stack(path, Path(path).name)
        if not deltas:
            raise RewritingError("that edits file holds no edits")
        session = current(st)
        if session.generator.name != deltas[0].model:
            session = ss.Session.start(deltas[0].model)
        session = session.with_edits(deltas)
        gr.Info(f"Loaded {len(deltas)} edit(s) on {session.generator.name}.")
        return p.everything(session, start, 0)

    f.save_stack_b.click(save_edits, [p.state], f.files, **PRIVATE)
    f.load_stack_b.upload(load_edits, [f.load_stack_b, p.state, p.first], p.every(),
                          **PRIVATE, **HEAVY)


def request_file_events(p: Page, f: FilesPanel) -> None:
    """Save the selections (or the latest edit) as a request JSON; load one back."""

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
        gr.Info(f"Loaded the edit's selections ({len(session.context)} context); "
                "press Execute to apply it.")
        return p.loaded(session, request)

    f.save_b.click(save_json, [p.state, p.rank, p.method, p.reg], f.files, **PRIVATE)
    f.load_b.upload(load_json, [f.load_b, p.state], p.loaded_outputs(), **PRIVATE)


def download_events(p: Page, f: FilesPanel) -> None:
    """Download the latest edit's delta or the full edited weights."""

    @friendly
    def download_delta(st):
        return str(ss.save_delta(current(st), -1, download_dir()))

    @friendly
    def download_weights(st, progress=PROGRESS):
        progress(0.5, desc="Writing the edited weights")
        return str(ss.save_weights(current(st), download_dir()))

    f.delta_b.click(download_delta, [p.state], f.files, **PRIVATE)
    f.weights_b.click(download_weights, [p.state], f.files, **PRIVATE, **HEAVY)


# ---- publish: the edit stack to a Hub repository ----------------------------------------------
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


def publish_events(p: Page, pub: PublishPanel) -> None:
    """Publish with the visitor's (or the allowed local) token; report the repository."""

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

    pub.publish_b.click(publish_now,
                        [p.state, pub.repo_tb, pub.private_cb, pub.delta_cb, pub.exist_cb],
                        pub.published, show_progress_on=pub.published, **PRIVATE, **HEAVY)


#: Sessions (by Gradio's session hash) whose visitor pressed Cancel during a projection.
CANCELLED: set[str] = set()


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
    from rewriting.photo import check_crop, default_crop, open_photo, parse_crop, prepare, show_crop
    from rewriting.project import STEPS, project, render_latent

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
            steps = gr.Number(STEPS, label="Steps", precision=0, minimum=1, maximum=2000,
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

        def side_by_side(session, projection) -> tuple:
            if projection is None or projection.model != session.generator.name:
                return None, None
            g = session.generator
            pair = [render_latent(g, projection, session.weights(edited))[0].numpy()
                    for edited in (False, True)]
            return tuple(ss.enlarge(image, CANVAS_PX) for image in pair)

        @friendly
        def run_projection(path, crop_text, n, st, request: gr.Request, progress=PROGRESS):
            session = current(st)
            if not path:
                raise RewritingError("upload a photo first")
            CANCELLED.discard(request.session_hash)
            photo = open_photo(path)
            crop, how = ((check_crop(photo, parse_crop(crop_text)), "given") if crop_text
                         else default_crop(photo, session.generator.face_framing))
            count = as_number(n, "the number of steps")
            if not 1 <= count <= 2000:
                raise RewritingError(f"steps must be from 1 to 2000, got {count}")

            def report(done: int, total: int) -> None:
                if request.session_hash in CANCELLED:
                    raise RewritingError("projection cancelled; nothing changed")
                progress((done, total), desc="projection steps", unit="steps")

            target = prepare(photo, session.generator.image_size, crop)
            projection = project(session.generator, target, steps=count, progress=report)
            m = projection.metrics
            text = (f"Projected into **{projection.model}** (crop {crop}, {how}) in "
                    f"{m['seconds']:.1f} s: "
                    f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f} (the model's mean image: "
                    f"{m['psnr_mean_image']:.2f} dB, SSIM {m['ssim_mean_image']:.3f}).")
            pair = side_by_side(session, projection)  # original model's, edited model's
            return (projection, ss.enlarge(show_crop(photo, crop), CANVAS_PX), *pair, text,
                    canvas_value(pair[0]))

        def cancel(request: gr.Request) -> None:
            CANCELLED.add(request.session_hash)

        @friendly
        def rerender(st, projection):
            return side_by_side(current(st), projection)

        event = project_b.click(run_projection, [upload, crop_tb, steps, state],
                                [latent, shown_crop, original, edited, info, photo_editor],
                                show_progress_on=info, **PRIVATE, **HEAVY)
        cancel_b.click(cancel, None, None, cancels=[event], **PRIVATE)
        state.change(rerender, [state, latent], [original, edited], **PRIVATE)
    return PhotoBrush(latent, photo_editor, paste_b, context_b)


def photo_brush_events(photo: PhotoBrush, chosen: Selections) -> None:
    """The projected photo as the paste or one more context sample (brushed on its canvas)."""

    def use(role: str) -> Callable:
        @friendly
        def keep(value, st, projection):
            if projection is None:
                raise RewritingError("project a photo first, then paint on it")
            return chosen.show(painted(current(st).with_photo(projection.named()), value, role,
                                       ss.PHOTO))

        return keep

    for button, role in ((photo.paste_b, "paste"), (photo.context_b, "context")):
        button.click(use(role), [photo.editor, chosen.state, photo.latent], chosen.outputs(),
                     **PRIVATE)




# ---- hidden API endpoints: the engine's JSON request in, metrics and images out ---------------
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


def build() -> gr.Blocks:
    """The app's page and its events.

    The panels are laid out first, then their events are wired in a fixed order: an event's
    position is its `fn_index`, which clients that join the queue directly rely on.
    """
    # Rendered pictures and downloads in Gradio's cache are deleted after an hour.
    with gr.Blocks(title="Rewriting a Deep Generative Model",
                   delete_cache=(CACHE_AGE // 2, CACHE_AGE)) as demo:
        state = gr.State(None)
        saved = gr.BrowserState(None, storage_key=BROWSER_KEY, secret=BROWSER_SECRET)
        found = gr.State([])
        tray_pick = gr.State(None)
        gr.Markdown(INTRO, elem_id="intro")
        example_bs, execute_b, erase_b = action_bar()
        model_dd, layer_dd, trunc, note = model_pickers()
        with gr.Row(elem_id="workspace"):
            with gr.Column(scale=3, min_width=300), gr.Tabs(elem_id="views") as tabs:
                with gr.Tab("Samples", id="samples", elem_id="samples-tab"):
                    samples = samples_tab()
                with gr.Tab("Before / after", id="result", elem_id="result-tab"):
                    result, comparison_img, strength = result_panel()
                with gr.Tab("Best matches", id="found", elem_id="found-tab"):
                    search_gal = found_gallery()
            brush = brush_column(state, samples.number, samples.view, tray_pick)
        rank, method, reg, erase_n = advanced_settings()
        compared, pending, measured = gr.State(None), gr.State(None), gr.State(None)
        history, revert_dd, revert_b = history_panel()
        files = files_panel()
        publish = publish_panel()
        photo = photo_panel(state)
        p = Page(state, model_dd, layer_dd, trunc, note, samples.gallery, samples.first,
                 samples.number, samples.view, samples.highlight, tabs, search_gal, found,
                 brush.canvas_key, brush.chosen, result, comparison_img, strength, compared,
                 pending, measured, history, revert_dd, rank, method, reg, erase_n)
        session_events(demo, p, saved)
        edit_file_events(p, files)
        picker_events(p)
        paging_events(p, samples.prev_b, samples.next_b)
        opening_events(p)
        tray_events(p, brush.remove_b, brush.clear_b)
        edit_buttons = [*example_bs, execute_b, erase_b]
        edits = execute_events(p, execute_b, erase_b, edit_buttons)
        revert_events(p, revert_b)
        search_events(p, brush.search_b)
        strength_events(p)
        suggest_events(p, brush.suggest_b)
        request_file_events(p, files)
        edits += example_events(p, example_bs, edit_buttons)
        canvas_follows_view(p)
        download_events(p, files)
        publish_events(p, publish)
        api_endpoints(state)
        photo_brush_events(photo, brush.chosen)
        # Last, so that every event above keeps its position (`fn_index`).
        unlock_after(edits, edit_buttons)
    return demo


if __name__ == "__main__":
    build().queue(default_concurrency_limit=LIGHT_LIMIT, max_size=QUEUE_SIZE).launch(css=CSS)
