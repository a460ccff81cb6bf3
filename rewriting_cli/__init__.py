"""The command line, `python -m rewriting` and the `rewriting` script.

`main` is the dispatcher; each other module holds one group of commands (its parsers and their
bodies), `common` what they share.
"""
