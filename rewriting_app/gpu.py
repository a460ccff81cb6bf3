"""ZeroGPU: the handlers that compute borrow a GPU for the call, sized to the model.

Off ZeroGPU (the `spaces` package absent, or SPACES_ZERO_GPU unset) `on_gpu` leaves a handler
as it is. On a ZeroGPU Space, `spaces.GPU` runs it in a forked worker that holds a GPU for
`gpu_seconds` at most; its arguments and result cross by pickling, so the result is brought to
the CPU first (`to_cpu`: no CUDA tensor crosses), the shared models cross as references to the
copy each process holds (`rewriting.generator.Generator`) and edits keep their identity
(`rewriting.delta.Delta`). A visitor whose GPU quota is spent, or whose call waited too long
for a GPU, gets a warning and the same work on the CPU instead of an error.
"""

import dataclasses
import functools
import os
from collections.abc import Callable

import gradio as gr
import numpy as np
import torch

from rewriting.generator import Generator
from zoo.hub import load_any

try:  # Hugging Face's ZeroGPU helper: installed on Spaces, absent elsewhere.
    import spaces
except ImportError:
    spaces = None

#: Seconds of GPU a handler asks for: BASE_SECONDS, and PER_MEGAPIXEL for each million pixels
#: of the model's images (a new layer's statistics included), at most MAX_SECONDS.
BASE_SECONDS = 30
PER_MEGAPIXEL = 90
MAX_SECONDS = 120
#: What a handler asks for when its arguments name no model (a new API client).
UNKNOWN_SECONDS = 60
#: The titles of ZeroGPU's errors that a CPU run answers: no GPU for this visitor now.
NO_GPU_NOW = ("ZeroGPU quota exceeded", "ZeroGPU queue timeout",
              "ZeroGPU pending credits exceeded", "ZeroGPU illegal duration")
ON_CPU = ("No GPU is free for you now (ZeroGPU quota or queue): this runs on the CPU, "
          "more slowly.")


def zero_gpu() -> bool:
    """Whether this process serves a ZeroGPU Space (and can borrow its GPUs)."""
    flag = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")
    return spaces is not None and flag


def preload(model: str) -> None:
    """On ZeroGPU, load `model` as the app starts: its move to CUDA is recorded then, as
    ZeroGPU expects, and replayed in each worker; elsewhere, nothing (it loads on first use)."""
    if zero_gpu():
        load_any(model)


def gpu_seconds(*args: object, **kwargs: object) -> int:
    """Seconds of GPU a handler called with these arguments asks for, from its model's size."""
    for value in (*args, *kwargs.values()):
        for owner in (value, getattr(value, "after", None)):
            generator = getattr(owner, "generator", None)
            if isinstance(generator, Generator):
                height, width = generator.image_size
                return min(MAX_SECONDS, round(BASE_SECONDS + PER_MEGAPIXEL * height * width / 1e6))
    return UNKNOWN_SECONDS


def to_cpu(value: object) -> object:
    """`value` with every tensor in it on the CPU: tensors, and those in tuples, lists, dicts
    and dataclasses (rebuilt only where something moved); anything else as it is."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, (str, bytes, np.ndarray)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        moved = [to_cpu(v) for v in value]
        same = all(a is b for a, b in zip(moved, value, strict=True))
        return value if same else type(value)(moved)
    if isinstance(value, dict):
        moved = {k: to_cpu(v) for k, v in value.items()}
        return value if all(moved[k] is v for k, v in value.items()) else moved
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
        moved = {k: to_cpu(v) for k, v in fields.items()}
        changed = {k: v for k, v in moved.items() if v is not fields[k]}
        return dataclasses.replace(value, **changed) if changed else value
    return value


def no_gpu_now(error: BaseException) -> bool:
    """Whether `error` is ZeroGPU saying that this visitor gets no GPU now."""
    return isinstance(error, gr.Error) and str(getattr(error, "title", "")) in NO_GPU_NOW


def on_gpu(fn: Callable) -> Callable:
    """`fn` on a borrowed GPU on ZeroGPU (its result on the CPU, the CPU when no GPU is free
    for the visitor); `fn` itself elsewhere."""
    if not zero_gpu():
        return fn

    @functools.wraps(fn)
    def on_worker(*args, **kwargs):
        return to_cpu(fn(*args, **kwargs))

    borrowed = spaces.GPU(duration=gpu_seconds)(on_worker)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return borrowed(*args, **kwargs)
        except gr.Error as err:
            if not no_gpu_now(err):
                raise
            gr.Warning(ON_CPU)
            return fn(*args, **kwargs)

    return call
