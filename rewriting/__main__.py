"""`python -m rewriting`: the command line, which lives above the engine in `rewriting_cli`."""

from rewriting_cli.main import run

run()
