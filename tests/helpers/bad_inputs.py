"""Bad inputs shared by the CLI, library and app tests: requests, masks and delta files.

Each table maps a case name to the input and a fragment of the one-line message it must get.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import save_file

from rewriting.delta import DELTA_FORMAT

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "examples" / "eye-to-mouth.json").read_text())
BOX = [40, 16, 56, 48]
DEEP = 100_000


def png_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@functools.cache
def masks() -> dict[str, tuple[object, str]]:
    """Bad masks (box or data URL) and the message fragment each gets ('|': alternatives)."""
    painted = Image.new("RGBA", (64, 64), (255, 255, 255, 255))
    whole = base64.b64decode(png_url(painted).split(",", 1)[1])
    gif = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(gif, format="GIF")
    return {
        "mask 10000x10000 png": (png_url(Image.new("1", (10_000, 10_000))), "more than"),
        "mask 20000x20000 png": (png_url(Image.new("1", (20_000, 20_000))), "more than"),
        "mask 2049x2048 png": (png_url(Image.new("1", (2049, 2048))), "more than"),
        "mask truncated png": (
            "data:image/png;base64," + base64.b64encode(whole[: len(whole) // 2]).decode(),
            "truncated or corrupt",
        ),
        "mask gif": ("data:image/gif;base64," + base64.b64encode(gif.getvalue()).decode(), "PNG"),
        "mask bad base64": ("data:image/png;base64,@@@@", "readable"),
        "mask not an image": ("data:image/png;base64,AAAA", "readable"),
        "mask plain text": ("eyes please", "PNG data URL"),
        "mask blank png": (png_url(Image.new("RGBA", (64, 64))), "empty"),
        "mask box floats": ([40.0, 16, 56, 48], "four integers"),
        "mask box three": ([40, 16, 56], "four integers"),
        "mask box bools": ([True, False, True, True], "four integers"),
        "mask box negative": ([-8, 16, 56, 48], "outside"),
        "mask box reversed": ([56, 16, 40, 48], "outside"),
        "mask box huge": ([0, 0, 10**12, 10**12], "outside"),
        "mask dict": ({"box": BOX}, "box"),
        "mask number": (7, "box"),
    }


def _with(**changes) -> dict:
    return {**EXAMPLE, **changes}


def _without(key: str, **changes) -> dict:
    return {k: v for k, v in _with(**changes).items() if k != key}


def _nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@functools.cache
def requests() -> dict[str, tuple[str, str]]:
    """Bad request texts (as a file's content or the app's request) and their messages."""
    table: dict[str, tuple[object, str]] = {
        "regularization -1": (_with(regularization=-1), "regularization must be zero or positive"),
        "regularization NaN": (_with(regularization=math.nan), "zero or positive"),
        "regularization Infinity": (_with(regularization=math.inf), "zero or positive"),
        "regularization text": (_with(regularization="abc"), "regularization must be a float"),
        "regularization bool": (_with(regularization=True), "regularization must be a float"),
        "erase 10**9": (_without("copy", erase=10**9), "exceeds layer main.6's 256 key channels"),
        "erase 257": (_without("copy", erase=257), "exceeds"),
        "erase 0": (_without("copy", erase=0), "positive channel count"),
        "erase -1": (_without("copy", erase=-1), "positive channel count"),
        "erase 1.5": (_without("copy", erase=1.5), "positive channel count"),
        "erase text": (_without("copy", erase="x"), "positive channel count"),
        "erase and copy": (_with(erase=3), "either"),
        "context 20000": (_with(context=[{"sample": 7, "mask": BOX}] * 20_000), "the limit is 64"),
        "context 65": (_with(context=[{"sample": 7, "mask": BOX}] * 65), "the limit is 64"),
        "context not a list": (_with(context={"sample": 7, "mask": BOX}), "must be a list"),
        "context entry a list": (_with(context=[[7, BOX]]), "context[0] must be"),
        "context sample negative": (_with(context=[{"sample": -3, "mask": BOX}]), "non-negative"),
        "context sample 10**12": (_with(context=[{"sample": 10**12, "mask": BOX}]),
                                  "out of range"),
        "sample text": (_with(copy={"sample": "1", "mask": BOX}), "non-negative integer"),
        "sample float": (_with(copy={"sample": 1.0, "mask": BOX}), "non-negative integer"),
        "sample bool": (_with(copy={"sample": True, "mask": BOX}), "non-negative integer"),
        "sample 100000": (_with(paste={"sample": 100_000, "mask": BOX}), "out of range"),
        "rank 0": (_with(rank=0), "rank must be at least 1"),
        "rank -1": (_with(rank=-1), "rank must be at least 1"),
        "rank 10**9": (_with(rank=10**9), "exceeds"),
        "rank 1.5": (_with(rank=1.5), "rank must be a int"),
        "rank text": (_with(rank="1"), "rank must be a int"),
        "method": (_with(method="magic"), "method must be"),
        "truncation on dcgan": (_with(truncation=0.5), "no truncation"),
        "truncation NaN": (_with(truncation=math.nan), "no truncation"),
        "model missing": (_without("model"), 'needs "model"'),
        "model a number": (_with(model=5), 'needs "model"'),
        "model unknown": (_with(model="dcgan-digiface2"), "unknown model"),
        "layer a number": (_with(layer=5), "layer must be"),
        "layer unknown": (_with(layer="main.77"), "no rewritable layer"),
        "paste missing": (_without("paste"), 'needs "paste"'),
        "copy missing": (_without("copy"), '"copy"'),
        "paste a list": (_with(paste=[7, BOX]), "paste must be"),
        "request a list": ([EXAMPLE], "must be a JSON object"),
        "request a string": ("edit", "must be a JSON object"),
        "request null": (None, "must be a JSON object"),
    }
    for name, (mask, message) in masks().items():
        table[f"copy {name}"] = (_with(copy={"sample": 1, "mask": mask}), message)
    texts = {name: (json.dumps(data), message) for name, (data, message) in table.items()}
    texts.update({
        "not json": ("{not json", "not valid JSON"),
        "empty text": ("", "not valid JSON"),
        "nested lists 100000 deep": (_nested(DEEP), "nested more than 16 levels"),
        "nested objects 100000 deep": ('{"a":' * DEEP + "1" + "}" * DEEP, "nested more than"),
        "nested 17 deep inside": (
            json.dumps(EXAMPLE)[:-1] + ', "note": ' + _nested(16) + "}", "nested more than 16"
        ),
        "over 4 MiB": (json.dumps(EXAMPLE)[:-1] + ', "pad": "' + "x" * 2**22 + '"}', "bytes"),
        "5000-digit integer": (json.dumps(EXAMPLE)[:-1] + ', "rank": ' + "9" * 5000 + "}",
                               "not valid JSON"),
    })
    return texts


def _good_delta(sha256: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A plausible delta for dcgan-digiface main.6 (weight [256, 128, 4, 4], key axis 0)."""
    directions = torch.zeros(1, 256)
    directions[0, 3] = 1.0
    tensors = {"lambda": torch.full((1, 128, 4, 4), 0.01), "directions": directions}
    meta = {
        "format": DELTA_FORMAT, "tool_version": "test", "model": "dcgan-digiface",
        "weights_sha256": sha256, "layer": "main.6", "weight": "main.6.weight",
        "key_axis": "0", "rank": "1", "method": "rank", "request": json.dumps(EXAMPLE),
        "metrics": "{}",
    }
    return tensors, meta


def _changed(tensors=None, meta=None, drop=()) -> Callable[[str, Path], None]:
    """A maker writing the good delta with some tensors or metadata replaced."""

    def make(sha256: str, path: Path) -> None:
        good_tensors, good_meta = _good_delta(sha256)
        written = {**good_tensors, **(tensors or {})}
        info = {**good_meta, **(meta or {})}
        for key in drop:
            written.pop(key, None)
            info.pop(key, None)
        save_file(written, str(path), metadata=info)

    return make


def write_good_delta(sha256: str, path: Path) -> None:
    """The plausible delta that every bad one departs from in one way."""
    _changed()(sha256, path)


def _raw(data: bytes | None) -> Callable[[str, Path], None]:
    def make(sha256: str, path: Path) -> None:
        if data is None:
            path.mkdir()
        else:
            path.write_bytes(data)

    return make


def _random_payload(sha256: str, path: Path) -> None:
    """The good delta's header with the tensor bytes replaced by (seeded) random bytes."""
    _changed()(sha256, path)
    raw = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(raw[:8], "little")
    noise = torch.randint(0, 256, (len(raw) - start,), generator=torch.Generator().manual_seed(9))
    raw[start:] = bytes(noise.to(torch.uint8).tolist())
    path.write_bytes(bytes(raw))


def _truncated(sha256: str, path: Path) -> None:
    _changed()(sha256, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _nan(shape: tuple[int, ...], value: float) -> torch.Tensor:
    tensor = torch.zeros(shape)
    tensor.view(-1)[5] = value
    return tensor


LAM, DIRS = (1, 128, 4, 4), (1, 256)
NOT_FLOAT = "not floating point"
SHAPES = "do not agree"
FIT = "does not fit"
NORM = "times the weight's norm"
MALFORMED = "malformed metadata"
UNREADABLE = "cannot read delta"
FOREIGN = "not a delta file written by this tool"

#: Bad delta files: a maker (weights sha256, path) and the message ('|' separates alternatives).
DELTAS: dict[str, tuple[Callable[[str, Path], None], str]] = {
    "lambda NaN": (_changed({"lambda": _nan(LAM, math.nan)}), "NaN or infinite"),
    "lambda Inf": (_changed({"lambda": _nan(LAM, math.inf)}), "NaN or infinite"),
    "directions NaN": (_changed({"directions": _nan(DIRS, math.nan)}), "NaN or infinite"),
    "directions -Inf": (_changed({"directions": _nan(DIRS, -math.inf)}), "NaN or infinite"),
    "lambda all NaN": (_changed({"lambda": torch.full(LAM, math.nan)}), "NaN or infinite"),
    "random payload bytes": (_random_payload, "NaN or infinite|" + NORM),
    "lambda 1e30": (_changed({"lambda": torch.full(LAM, 1e30)}), NORM),
    "lambda 100 everywhere": (_changed({"lambda": torch.full(LAM, 100.0)}), NORM),
    "lambda int64": (_changed({"lambda": torch.ones(LAM, dtype=torch.int64)}), NOT_FLOAT),
    "directions int64": (_changed({"directions": torch.ones(DIRS, dtype=torch.int64)}), NOT_FLOAT),
    "lambda int32": (_changed({"lambda": torch.ones(LAM, dtype=torch.int32)}), NOT_FLOAT),
    "lambda uint8": (_changed({"lambda": torch.ones(LAM, dtype=torch.uint8)}), NOT_FLOAT),
    "lambda bool": (_changed({"lambda": torch.ones(LAM, dtype=torch.bool)}), NOT_FLOAT),
    "rank mismatch": (_changed({"lambda": torch.zeros(2, 128, 4, 4)}), SHAPES),
    "rank 0": (_changed({"lambda": torch.zeros(0, 128, 4, 4), "directions": torch.zeros(0, 256)},
                        {"rank": "0"}), SHAPES),
    "directions 1-D": (_changed({"directions": torch.zeros(256)}), SHAPES),
    "directions 3-D": (_changed({"directions": torch.zeros(1, 256, 1)}), SHAPES),
    "lambda 1-D": (_changed({"lambda": torch.zeros(1)}), SHAPES),
    "directions 128 key channels": (_changed({"directions": torch.zeros(1, 128)}), FIT),
    "lambda 3x3 taps": (_changed({"lambda": torch.zeros(1, 128, 3, 3)}), FIT),
    "lambda 256 values": (_changed({"lambda": torch.zeros(1, 256, 4, 4)}), FIT),
    "key axis 5": (_changed(meta={"key_axis": "5"}), FIT),
    "key axis -1": (_changed(meta={"key_axis": "-1"}), FIT),
    "key axis 1": (_changed(meta={"key_axis": "1"}), FIT),
    "key axis text": (_changed(meta={"key_axis": "x"}), MALFORMED),
    "key axis empty": (_changed(meta={"key_axis": ""}), MALFORMED),
    "rank metadata 3": (_changed(meta={"rank": "3"}), MALFORMED),
    "layer missing": (_changed(drop=("layer",)), MALFORMED),
    "layer unknown": (_changed(meta={"layer": "main.77"}), "no rewritable layer"),
    "weight of another layer": (_changed(meta={"weight": "main.3.weight"}), FIT),
    "another model": (_changed(meta={"model": "someone-else"}), "made for model"),
    "other weights": (_changed(meta={"weights_sha256": "0" * 64}), "made for model"),
    "format missing": (_changed(drop=("format",)), FOREIGN),
    "format from the future": (_changed(meta={"format": "rewriting-delta/9"}), FOREIGN),
    "extra tensor": (_changed({"bias": torch.zeros(3)}), FOREIGN),
    "directions missing": (_changed(drop=("directions",)), FOREIGN),
    "request nested 100000 deep": (_changed(meta={"request": _nested(DEEP)}), MALFORMED),
    "request not json": (_changed(meta={"request": "{oops"}), MALFORMED),
    "request a list": (_changed(meta={"request": "[1, 2]"}), MALFORMED),
    "metrics not json": (_changed(meta={"metrics": "nope"}), MALFORMED),
    "empty file": (_raw(b""), UNREADABLE),
    "random bytes file": (_raw(bytes(range(256)) * 8), UNREADABLE),
    "header length only": (_raw((10**6).to_bytes(8, "little")), UNREADABLE),
    "truncated file": (_truncated, UNREADABLE),
    "a folder": (_raw(None), UNREADABLE),
}
