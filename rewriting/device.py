"""Where the engine computes: one device per process, chosen once, and how renders may round.

The device comes from `--device` (the command line), else REWRITING_DEVICE, else `auto`: the
first CUDA GPU when PyTorch sees one, else the CPU (`mps`, Apple's GPU, only when named: it has
no float64, which statistics and the solve need). The shared model, its statistics (float64),
directions, solves, goals, renders and measures live there. Latents are drawn on the CPU and
moved, so sample N is the same latent on every machine; images, deltas and projected latents
come back on the CPU. Renders may run in float16 or bfloat16 on a GPU (`--precision`,
REWRITING_PRECISION); the CPU always renders in float32.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from .errors import RewritingError

DEVICE_ENV = "REWRITING_DEVICE"
PRECISION_ENV = "REWRITING_PRECISION"
DEVICES = "auto, cpu, cuda, cuda:N or mps"
PRECISIONS = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
CPU = torch.device("cpu")

_lock = threading.Lock()
_chosen: torch.device | None = None
_precision: torch.dtype = torch.float32


def auto_device() -> torch.device:
    """A CUDA GPU when PyTorch sees one (under torchrun, the rank's own: LOCAL_RANK), else the
    CPU."""
    if not torch.cuda.is_available():
        return CPU
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())


def parse_device(text: str) -> torch.device:
    """`auto`, `cpu`, `cuda`, `cuda:N` or `mps` as a device available here, or a one-line error."""
    name = str(text).strip().lower()
    if name == "auto":
        return auto_device()
    if not re.fullmatch(r"cpu|mps|cuda(:\d{1,4})?", name):
        raise RewritingError(f"device must be one of {DEVICES}, got {str(text)[:40]!r}")
    if name == "cpu":
        return CPU
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise RewritingError("device mps is not available here (no Apple GPU that this "
                                 "PyTorch build can use): use --device cpu")
        return torch.device("mps")
    if not torch.cuda.is_available():
        build = "has no CUDA" if torch.version.cuda is None else "sees no CUDA GPU"
        raise RewritingError(f"device {name} is not available here (PyTorch "
                             f"{torch.__version__} {build}): use --device cpu or auto")
    index = int(name.partition(":")[2] or torch.cuda.current_device())
    if index >= torch.cuda.device_count():
        raise RewritingError(f"device {name} is not available here: PyTorch sees "
                             f"{torch.cuda.device_count()} CUDA GPU(s), cuda:0 to "
                             f"cuda:{torch.cuda.device_count() - 1}")
    return torch.device("cuda", index)


def parse_precision(text: str, device: torch.device) -> torch.dtype:
    """`float32`, `float16` or `bfloat16` as the dtype renders use on `device`, or a one-line
    error (half precision on the CPU)."""
    name = str(text).strip().lower()
    if name not in PRECISIONS:
        raise RewritingError(f"precision must be one of {', '.join(PRECISIONS)}, got "
                             f"{str(text)[:40]!r}")
    if name != "float32" and device.type == "cpu":
        raise RewritingError(f"precision {name} renders only on a GPU (cuda or mps); the CPU "
                             "renders in float32")
    return PRECISIONS[name]


def select_device(device: str | None = None, precision: str | None = None) -> torch.device:
    """Choose this process's device (`device`, else REWRITING_DEVICE, else auto) and render
    precision (`precision`, else REWRITING_PRECISION, else float32); models loaded later go
    there. Refused before anything is loaded when the device is not available."""
    global _chosen, _precision
    chosen = parse_device(device or os.environ.get(DEVICE_ENV) or "auto")
    dtype = parse_precision(precision or os.environ.get(PRECISION_ENV) or "float32", chosen)
    with _lock:
        _chosen, _precision = chosen, dtype
    return chosen


def current_device() -> torch.device:
    """The process's device: the one selected, else chosen now (once) from the environment."""
    with _lock:
        chosen = _chosen
    return chosen if chosen is not None else select_device()


def current_precision() -> torch.dtype:
    """The dtype renders use on the process's device (float32 unless selected)."""
    current_device()
    with _lock:
        return _precision


def render_precision(device: torch.device, dtype: torch.dtype) -> AbstractContextManager:
    """Autocast to `dtype` on a GPU `device` for a render; nothing on the CPU or in float32."""
    if dtype == torch.float32 or device.type == "cpu":
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@contextmanager
def exact_matmul() -> Iterator[None]:
    """CUDA matrix products and convolutions in true float32 (TF32 off) inside the block, as
    comparisons with the CPU need; the settings before are restored after it."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
