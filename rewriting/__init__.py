"""Rewrite the rules of a pretrained generator (Bau et al., "Rewriting a Deep Generative Model").

The engine is model-agnostic: it sees a `Generator` and the `LayerSpec` of each rewritable
layer. Reading order: `stats` (C = E[k k^T]), `directions` (D from context), `goal` (keys and
target values from copy and paste), `solve` (Lambda), `delta` (W1 = W0 + Lambda D, undoable).
"""

__version__ = "0.1.0"

from .errors import RewritingError  # noqa: E402
from .generator import Generator, LayerSpec  # noqa: E402

__all__ = ["Generator", "LayerSpec", "RewritingError", "__version__"]
