"""The model the page opens on, decided once when the app starts.

REWRITING_DEFAULT_MODEL when it is set; else, where the engine computes on a CUDA GPU and the
Hub answers, the paper's 256 px StyleGAN2 church (its statistics are computed on first use,
with progress, and cached); else the embedded DCGAN, which needs no network.
"""

import os

from rewriting.device import current_device
from rewriting.errors import RewritingError
from zoo.fetch import hub_reachable
from zoo.hub import HUB_PREFIX
from zoo.registry import model_entry

DEFAULT_ENV = "REWRITING_DEFAULT_MODEL"
#: The opening model where a GPU and the Hub are both there.
GPU_MODEL = "stylegan2-church-hub"


def opening_model(embedded: str) -> str:
    """The model to open on (see the module's text); `embedded` is the offline default."""
    chosen = os.environ.get(DEFAULT_ENV, "").strip()
    if chosen:
        if not chosen.startswith(HUB_PREFIX):
            try:
                model_entry(chosen)
            except RewritingError as err:
                raise RewritingError(f"{DEFAULT_ENV}: {err}") from None
        return chosen
    if current_device().type == "cuda" and hub_reachable():
        return GPU_MODEL
    return embedded
