"""The page's settings: its default model, sizes, concurrency, texts, style and browser storage."""

import json
from pathlib import Path

from .opening import opening_model

#: The embedded model, which needs no network: the examples' model and the offline default.
EMBEDDED_MODEL = "dcgan-digiface"
#: The model the page opens on (`opening`: REWRITING_DEFAULT_MODEL, a GPU and the Hub, or not).
DEFAULT_MODEL = opening_model(EMBEDDED_MODEL)
#: Samples in the grid the visitor paints on (one page).
PAGE = 6
SEARCH_SAMPLES = range(256)
SEARCH_SHOWN = 12
COMPARE_SHOWN = 6
CANVAS_PX = 256
TILE_PX = 128
#: The most steps a photo's projection may take (the Steps field clamps to 1 to this).
MAX_PHOTO_STEPS = 2000
#: Transparent pixels between the copied part and the goal in an example's picture.
EXAMPLE_GAP_PX = 4
BRUSH_COLOR = "rgba(255, 0, 200, 0.55)"

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
#: Event settings of the page's own handlers: not offered to API clients.
PRIVATE = {"api_visibility": "private"}

INTRO = """
# Rewriting a Deep Generative Model
Teach a pretrained image generator a new rule by example (Bau et al., ECCV 2020): paint **what to
copy** on one sample, **where it goes** on another, and a few **places where the rule applies**,
then **Execute**. The generator itself changes, so *every* image it makes follows the new rule.
"""

#: The checkout's examples folder (the Space runs app.py from the checkout).
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
#: Example requests for the embedded model, chosen for a rule change visible at a glance:
#: button label -> request file, in the page's order (the app benchmark clicks the same).
EXAMPLES = json.loads((EXAMPLES_DIR / "buttons.json").read_text())
NO_RESULT = "Execute or Erase to change the model; what the edit did is reported here."

CSS = """
.thumb img { image-rendering: pixelated; }
#model input, #layer input { text-overflow: ellipsis; }
#comparison img { object-fit: contain; }
#intro h1 { margin: 0 0 2px 0; font-size: 1.6rem; }
#intro p { margin: 0; font-size: 0.95rem; }
#note { font-size: 0.8rem; }
#note p { margin: 0; }
#result { max-height: 300px; overflow-y: auto; }
.thumb .grid-container {
  grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important;
}
#actions button img { width: auto; height: 48px; image-rendering: pixelated; }
/* Messages appear at the bottom left, clear of Execute and the brush. */
.toast-wrap { top: auto !important; bottom: 12px !important; right: auto !important;
  left: 12px !important; }
@media (max-width: 640px) {
  #found .grid-container { --grid-cols: 4 !important; }
}
"""
#: Where the visitor's session is kept in the browser (localStorage), and the key Gradio
#: scrambles it with: not a secret (the page holds it), fixed so that a restart keeps it readable.
BROWSER_KEY = "rewriting-session"
BROWSER_SECRET = "rewriting-a-deep-generative-model"


def show_result(selector: str) -> str:
    """JavaScript that brings an element showing a result into view when its top is not on
    screen (on a narrow screen it is below the grid), otherwise moves nothing; the event's
    inputs pass through unchanged."""
    return (f"(...inputs) => {{ const shown = document.querySelector({selector!r});"
            " const top = shown ? shown.getBoundingClientRect().top : 0;"
            " if (top < 0 || top > window.innerHeight - 200)"
            " shown.scrollIntoView({behavior: 'instant', block: 'start'}); return inputs; }")
