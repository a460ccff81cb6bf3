"""What the commands share: the default model, argument types, progress lines, delta files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rewriting.delta import Delta, EditStack
from rewriting.device import DEVICE_ENV, DEVICES, PRECISION_ENV, PRECISIONS
from rewriting.generator import Generator

#: The model a command uses when none is given: the embedded, pretrained DCGAN.
DEFAULT_MODEL = "dcgan-digiface"


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """`--device` and `--precision`, which every command takes."""
    parser.add_argument("--device", help=f"where to compute: {DEVICES} (default: "
                        f"${DEVICE_ENV}, else auto: a CUDA GPU if there is one, else the CPU)")
    parser.add_argument("--precision", help=f"render precision on a GPU: {', '.join(PRECISIONS)} "
                        f"(default: ${PRECISION_ENV}, else float32; the CPU renders in float32)")


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be an integer from {low} to {high}, got {text!r}"
            )
        return value

    return parse


def progress(label: str, unit: str = "samples") -> Callable[[int, int], None]:
    """A progress line on stderr, for long work."""

    def report(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{label}: {done}/{total} {unit}", end=end, file=sys.stderr, flush=True)

    return report


def open_edits(generator: Generator, paths: Sequence[str]) -> EditStack:
    """The model with the delta files at `paths` (`--edit`) applied in order."""
    return EditStack(generator, [Delta.load(p) for p in paths])
