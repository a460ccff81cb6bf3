"""How much one input may ask for, and the checks that refuse more with a clear message.

The CLI, the file loaders and the app share these limits, so an input is refused the same way
wherever it comes from, before any work is done or anything is written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from .errors import RewritingError

#: Largest request file (or request text sent to the app), in bytes.
MAX_REQUEST_BYTES = 4 * 2**20
#: Deepest nesting of lists and objects in a request (ours needs 4 levels).
MAX_JSON_DEPTH = 16
#: Most context selections one request may hold.
MAX_CONTEXT = 64
#: Most pixels a painted mask image may have (a 2048x2048 canvas).
MAX_MASK_PIXELS = 2048 * 2048
#: Largest sample number (latents are rows of one seeded stream, drawn up to the largest).
MAX_SAMPLE_NUMBER = 99_999
#: Most samples one command renders or averages over (render, stats, held-out samples).
MAX_SAMPLES_PER_CALL = 10_000
#: Most samples one call of the app's API renders.
MAX_APP_SAMPLES = 64
#: Most pixels of one picture the CLI draws (a grid of samples, before/after rows).
MAX_PICTURE_PIXELS = 2**26
#: Largest enlargement of each sample in a picture.
MAX_SCALE = 16
#: A delta file that changes its weight by more than this times the weight's norm is refused
#: (an edit is refused above 1 when it is made; stacked edits may add up).
MAX_DELTA_NORM_RATIO = 10.0


def parse_json(text: str | bytes, what: str) -> Any:
    """Decode JSON text of at most MAX_REQUEST_BYTES bytes and MAX_JSON_DEPTH levels."""
    if not isinstance(text, (str, bytes)):
        raise RewritingError(f"{what} must be JSON text, got {type(text).__name__}")
    size = len(text.encode("utf-8", "replace") if isinstance(text, str) else text)
    if size > MAX_REQUEST_BYTES:
        raise RewritingError(f"{what} is {size} bytes; the limit is {MAX_REQUEST_BYTES} bytes")
    try:
        data = json.loads(text)
    except RecursionError:
        raise RewritingError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, huge integers
        raise RewritingError(f"{what} is not valid JSON: {err}") from None
    check_decoded(data, what)
    return data


def read_json_file(path: str | Path, what: str) -> Any:
    """Read and decode a JSON file under the same limits; a missing or odd path is an error."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_REQUEST_BYTES + 1)
    except FileNotFoundError:
        raise RewritingError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise RewritingError(f"{what} {path} is a folder, not a file") from None
    except OSError as err:
        raise RewritingError(f"cannot read {what} {path}: {err.strerror or err}") from None
    if len(raw) > MAX_REQUEST_BYTES:
        raise RewritingError(f"{what} {path} is over the limit of {MAX_REQUEST_BYTES} bytes")
    return parse_json(raw, f"{what} {path}")


def check_picture(rows: int, columns: int, image_size: tuple[int, int], scale: int) -> None:
    """Refuse a picture of rows x columns samples, each enlarged `scale` times, that is too big."""
    pixels = rows * columns * image_size[0] * image_size[1] * scale**2
    if pixels > MAX_PICTURE_PIXELS:
        raise RewritingError(
            f"the picture would have {pixels} pixels (limit {MAX_PICTURE_PIXELS}): "
            "ask for fewer samples or a smaller --scale"
        )


def check_context(selections: list) -> None:
    """Refuse a request with more than MAX_CONTEXT context selections."""
    if len(selections) > MAX_CONTEXT:
        raise RewritingError(
            f"the request has {len(selections)} context selections; the limit is {MAX_CONTEXT}"
        )


def parse_samples(text: str, limit: int = MAX_SAMPLES_PER_CALL) -> list[int]:
    """Sample numbers from '0-15', '3,5,9' or '0-3,10': at most `limit`, each a valid number."""
    if not isinstance(text, str):
        raise RewritingError(f"samples must be text like 0-15 or 1,4,9, got {text!r}")
    spans, count = [], 0
    for part in text.split(","):
        try:
            first, dash, last = part.partition("-")
            first = int(first)
            last = int(last) if dash else first
        except ValueError:
            raise RewritingError(f"bad sample list {text!r}: use e.g. 0-15 or 1,4,9") from None
        if first < 0 or last < first:
            raise RewritingError(f"bad sample list {text!r}: {part.strip()!r} needs first <= last")
        if last > MAX_SAMPLE_NUMBER:
            raise RewritingError(f"sample {last} is out of range: numbers go from 0 to "
                                 f"{MAX_SAMPLE_NUMBER}")
        count += last - first + 1
        if count > limit:
            raise RewritingError(f"{text!r} asks for more than {limit} samples; one call "
                                 f"renders at most {limit}")
        spans.append(range(first, last + 1))
    return [n for span in spans for n in span]


def check_latents(z: Any, z_dim: int) -> torch.Tensor:
    """Latents [N, z_dim] (1 <= N <= MAX_SAMPLES_PER_CALL), finite floating point, as float32."""
    if not isinstance(z, torch.Tensor) or not z.is_floating_point():
        kind = z.dtype if isinstance(z, torch.Tensor) else type(z).__name__
        raise RewritingError(f"latents must be floating point, got {kind}")
    if z.dim() != 2 or z.shape[1] != z_dim or not 1 <= z.shape[0] <= MAX_SAMPLES_PER_CALL:
        raise RewritingError(
            f"latents must have shape [N, {z_dim}] with 1 <= N <= {MAX_SAMPLES_PER_CALL}, "
            f"got {list(z.shape)}"
        )
    if not bool(torch.isfinite(z).all()):
        raise RewritingError("latents hold NaN or infinite values")
    return z.float()


# Hub names

#: Longest owner or repository name the Hub accepts.
MAX_REPO_PART = 96
#: Longest model, family, layer or license name, or digest, read from a file from outside.
MAX_NAME = 256
#: Longest branch or tag name accepted as a revision (git allows more; no real one comes close).
MAX_REVISION = 128
#: An owner or repository name: ASCII letters, digits, '-', '_', '.', starting and ending with a
#: letter or digit (the Hub's own rule; `\w` would let other alphabets in).
_REPO_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
#: A commit id, a branch or tag name of safe characters, or a pull request's ref.
_REVISION = re.compile(r"[0-9a-f]{40}|[A-Za-z0-9][A-Za-z0-9._-]*|refs/pr/[1-9][0-9]{0,8}")


def check_repo_id(repo_id: Any, what: str = "repository") -> str:
    """`repo_id` if it is OWNER/NAME in the Hub's ASCII rule (no '..' or '--'), else refused."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(
        len(p) <= MAX_REPO_PART and _REPO_PART.fullmatch(p) and ".." not in p and "--" not in p
        for p in parts
    ):
        shown = repr(repo_id)[:120]
        raise RewritingError(
            f"bad {what} {shown}: OWNER/NAME takes ASCII letters, digits, '-', '_' and '.' "
            f"(at most {MAX_REPO_PART} each, no '..' or '--')"
        )
    return repo_id


def check_revision(revision: Any) -> str:
    """`revision` if it is a commit id, a safe branch or tag name, or refs/pr/N, else refused.

    Never '..', a leading '/' or any other path: the Hub client names a file after it.
    """
    if not (
        isinstance(revision, str) and len(revision) <= MAX_REVISION
        and _REVISION.fullmatch(revision) and ".." not in revision
        and not revision.endswith((".lock", "."))
    ):
        shown = repr(revision)[:120]
        raise RewritingError(
            f"bad revision {shown}: give a 40-hex commit id or a branch or tag name of at most "
            f"{MAX_REVISION} ASCII letters, digits, '-', '_' and '.'"
        )
    return revision


# Output paths

#: Most bytes of one file name (NAME_MAX of Linux's file systems: ext4, xfs, btrfs, tmpfs).
MAX_NAME_BYTES = 255
#: Most bytes of a path handed to the kernel (PATH_MAX, 4096, less the terminating NUL).
MAX_PATH_BYTES = 4095
#: Kernel pseudo-file systems: their files are switches and views of the kernel, never outputs.
SYSTEM_FOLDERS = ("/proc", "/sys")
#: A temporary safetensors left in the statistics cache is removed once unchanged this long (a
#: live writer changes it every moment; writing even a large one takes seconds).
STALE_TEMPORARY_SECONDS = 600


# App state

#: Longest session a visitor's browser may hand back, in characters of JSON text: its edits and
#: its photo latents (each at most MAX_REQUEST_BYTES) and its selections.
MAX_SNAPSHOT_CHARS = 3 * MAX_REQUEST_BYTES


def _text_length(item: Any) -> int:
    """About how many characters `item` itself adds to JSON text (a container: its brackets and
    keys, not its values; a scalar other than text: at least 2, with its comma)."""
    if isinstance(item, str):
        return len(item) + 3
    if isinstance(item, dict):
        return 2 + sum(len(str(key)) + 4 for key in item)
    return 2


def check_decoded(data: Any, what: str, limit: int | None = None) -> None:
    """Refuse decoded JSON data nested more than MAX_JSON_DEPTH levels deep or, with a `limit`,
    longer than `limit` characters as text: walked without recursion or copies, stopping at the
    first excess."""
    size, walking = 0, [iter((data,))]
    while walking:
        item = next(walking[-1], walking)
        if item is walking:  # that container is done
            walking.pop()
            continue
        size += _text_length(item)
        if limit is not None and size > limit:
            raise RewritingError(f"{what} is longer than {limit} characters")
        if isinstance(item, (dict, list)):
            if len(walking) > MAX_JSON_DEPTH:
                raise RewritingError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
            walking.append(iter(item.values() if isinstance(item, dict) else item))


# Network sizes

#: Most numbers (parameters and buffers) a network built from a file may hold: the largest
#: released model of these families (StyleGAN2 or StyleGAN3 at 1024 px) holds about 35 million.
MAX_NETWORK_PARAMETERS = 200_000_000
#: Most channels of one layer: StyleGAN3-R's 1024 are the most any released model uses.
MAX_CHANNELS = 4096
#: Widest latent vector (z, w or style) or input of a network: released models use 512.
MAX_LATENT_DIM = 4096
#: Most class labels of a conditional model (ImageNet's 1,000 ten times over).
MAX_LABELS = 10_000
#: Largest image side a network may draw, in pixels: released models reach 1024.
MAX_RESOLUTION = 2048
#: Most layers one stack may declare (StyleGAN's 8 mapping layers, StyleGAN3's 14 synthesis
#: layers, a file's layer numbers).
MAX_LAYERS = 64
#: Most taps of a resampling filter, or the widest convolution kernel (NVIDIA's: 4 to 12 taps,
#: 3x3 kernels).
MAX_TAPS = 16
#: Most tensors one safetensors checkpoint may hold: a 1024-px generator holds about 300.
MAX_CHECKPOINT_TENSORS = 10_000
#: Largest safetensors header, in bytes (MAX_CHECKPOINT_TENSORS entries of about 100 bytes, x4).
MAX_HEADER_BYTES = 4 * 2**20
#: Largest `config_json` buffer (a network's constructor kwargs as JSON take under 1 KB).
MAX_CONFIG_BYTES = 2**16
#: Most pickle operations reading one NVIDIA network file may take: a 1024-px training snapshot
#: (G, D and G_ema) takes about 100,000.
MAX_PICKLE_OPS = 1_000_000
#: Most networks (persistent modules) one NVIDIA file may hold: a 1024-px snapshot has about 250.
MAX_PICKLE_MODULES = 10_000
#: Deepest nesting of modules in an NVIDIA file: NVIDIA's deepest (G, synthesis, block, layer,
#: affine) has 5 levels.
MAX_MODULE_DEPTH = 16
#: Most values all constructor kwargs of one NVIDIA file may expand to, a value the pickle shares
#: counted at each place it appears (a snapshot's kwargs hold about 1,500).
MAX_KWARGS_VALUES = 100_000
#: Deepest nesting of constructor kwargs (NVIDIA's: a list in a dict in a dict, 3 levels).
MAX_KWARGS_DEPTH = 8
#: Most dimensions of a stored tensor or array (convolution weights have 4, rosinality's 5).
MAX_TENSOR_DIMS = 8
#: Largest object pickle in a torch.save zip checkpoint, in bytes: a 1024-px StyleGAN2 training
#: checkpoint (generators, discriminator, optimisers) needs about 100 KB, and unpickling costs up
#: to 80 bytes of memory a byte (one-byte opcodes that each make an empty dict).
MAX_TORCH_PICKLE_BYTES = 2**20


def _shown(value: Any) -> str:
    """A short description of an untrusted value for a message (never its full repr)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit number"
    if isinstance(value, (str, int, float, type(None))):
        return repr(value)[:40]
    return f"a {type(value).__name__}"


def check_count(value: Any, what: str, low: int, high: int) -> int:
    """`value` if it is an int (not a bool, float or text) from `low` to `high`, else refused."""
    if type(value) is not int or not low <= value <= high:
        raise RewritingError(f"{what} must be a whole number from {low} to {high}, "
                             f"got {_shown(value)}")
    return value


def check_real(value: Any, what: str, low: float, high: float) -> float:
    """`value` as a float if it is a finite int or float (not a bool) from `low` to `high`."""
    if type(value) not in (int, float) or not low <= value <= high:  # NaN fails the range too
        raise RewritingError(f"{what} must be a number from {low:g} to {high:g}, "
                             f"got {_shown(value)}")
    return float(value)


def check_flag(value: Any, what: str) -> bool:
    """`value` if it is true or false (not a number or text), else refused."""
    if not isinstance(value, bool):
        raise RewritingError(f"{what} must be true or false, got {_shown(value)}")
    return value


def check_choice(value: Any, what: str, choices: tuple[str, ...]) -> str:
    """`value` if it is one of the names `choices`, else refused."""
    if not isinstance(value, str) or value not in choices:
        raise RewritingError(f"{what} must be one of {', '.join(choices)}, got {_shown(value)}")
    return value
