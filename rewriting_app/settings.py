"""The page's settings: its default model, sizes, concurrency, texts, style and browser storage."""

import json
from pathlib import Path

from .opening import opening_model

#: The embedded model, which needs no network: the examples' model and the offline default.
EMBEDDED_MODEL = "dcgan-digiface"
#: The model the page opens on (`opening`: REWRITING_DEFAULT_MODEL, a GPU and the Hub, or not).
DEFAULT_MODEL = opening_model(EMBEDDED_MODEL)
PAGE = 24
SEARCH_SAMPLES = range(256)
SEARCH_SHOWN = 12
COMPARE_SHOWN = 6
CANVAS_PX = 256
TILE_PX = 128
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
Change a *rule* of a pretrained image generator by example (Bau et al., ECCV 2020). Try an
example, or make your own: click a sample, paint a part of it and press **Copy**; paint where it
should go on another sample, **Paste**; paint a few places where the rule applies, **Context**
each; then **Execute**. The generator's weights change, so *every* such place follows the rule.
"""

#: The checkout's examples folder (the Space runs app.py from the checkout).
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
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


