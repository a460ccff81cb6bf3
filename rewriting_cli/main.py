"""`python -m rewriting`: one command per call, each parsed and run by its group's module.

Bad input prints one line and exits with status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from typing import NoReturn

from rewriting import __version__
from rewriting.device import select_device
from rewriting.errors import RewritingError, one_line
from rewriting.parallel import init_from_environment

from . import edit, hub, lab, models, photo, sample
from .common import add_device_arguments


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line with exit status 2, like bad input."""

    def error(self, message: str) -> NoReturn:
        raise RewritingError(f"{message} (see {self.prog} --help)")


#: Each command's parser, in the order `--help` lists them.
COMMANDS = (
    models.add_models, sample.add_sample, edit.add_stats, sample.add_render, edit.add_edit,
    lab.add_bench, lab.add_evaluate, sample.add_export, hub.add_push, hub.add_convert,
    photo.add_project, photo.add_project_eval, models.add_check_plugin,
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each sets `run`, the function that carries it out."""
    parser = _Parser(
        prog="python -m rewriting", description="Rewrite the rules of a pretrained generator."
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    for command in sub.choices.values():
        add_device_arguments(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input (an unavailable device included, before anything is loaded)
    prints one line and gives exit status 2."""
    try:
        args = build_parser().parse_args(argv)
        init_from_environment(select_device(args.device, args.precision))
        status = args.run(args)
    except RewritingError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    return status or 0


def run() -> NoReturn:
    """The command's entry point: `main` in a process that ends with it."""
    # The objects importing torch made live until exit: keep them out of every collection,
    # the one at interpreter shutdown included (about 0.2 s of a command's wall time).
    gc.freeze()
    sys.exit(main())
