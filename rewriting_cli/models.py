"""`models` (the catalog: what is cached and pinned) and `check-plugin` (contracts)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rewriting.errors import RewritingError
from zoo.conformance import check_plugin, table
from zoo.fetch import cached_path
from zoo.registry import list_models, pinning, plugin


def add_models(sub: argparse._SubParsersAction) -> None:
    """`models [FILTER] [--json]`: the registered models."""
    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("filter", nargs="?", default="*", help="glob on model names, e.g. 'stylegan2*'")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_models)


def add_check_plugin(sub: argparse._SubParsersAction) -> None:
    """`check-plugin FAMILY [--checkpoint FILE]`: every contract the engine relies on."""
    p = sub.add_parser("check-plugin", help="check a generator family against the engine's "
                       "contracts; exit status 1 if any fails")
    p.add_argument("family", help="generator family, e.g. dcgan (see `models`)")
    p.add_argument("--checkpoint", help="checkpoint to build from (default: the family's first "
                   "catalog model)")
    p.set_defaults(run=cmd_check_plugin)


def cmd_models(args: argparse.Namespace) -> None:
    """Print the catalog as a table (or JSON), from the caches only: no network."""
    entries = list_models(args.filter)
    pins = [pinning(m.source) for m in entries]
    local = [cached_path(m.source) for m in entries]
    sizes = [m.size_bytes or (path.stat().st_size if path and path.is_file() else None)
             for m, path in zip(entries, local, strict=True)]
    if args.json:
        rows = [
            {
                "name": m.name, "family": m.family, "source": str(m.source),
                "default_layer": m.default_layer, "license": m.license,
                "description": m.description, "pinned": pinned, "pinning": how,
                "resolution": m.resolution, "size_mb": size and round(size / 1e6, 1),
                "cached": path is not None, "unsupported": m.unsupported,
            }
            for m, (pinned, how), path, size in zip(entries, pins, local, sizes, strict=True)
        ]
        print(json.dumps(rows, indent=2))
        return
    print(f"{'name':26} {'family':13} {'res':>5} {'MB':>6} {'license':30} {'pinned':26} "
          f"{'cached':6} source")
    for m, (_, how), path, size in zip(entries, pins, local, sizes, strict=True):
        mb = f"{size / 1e6:.0f}" if size else "-"
        mark = "" if m.unsupported is None else "  (not supported yet, see below)"
        print(f"{m.name:26} {m.family:13} {m.resolution or '-':>5} {mb:>6} {m.license:30} "
              f"{how:26} {'yes' if path else 'no':6} {m.source}{mark}")
    loose = sum(not pinned for pinned, _ in pins)
    if loose:
        print(f"\n{loose} of {len(entries)} models are not pinned to a full sha256 (and a commit, "
              "for Hub files): their downloads are checked only as far as the pinned column says")
    for m in entries:
        if m.unsupported:
            print(f"{m.name}: listed, not supported yet: {m.unsupported}")


def cmd_check_plugin(args: argparse.Namespace) -> int:
    """Print the contract table; exit status 1 if any contract fails."""
    plugin(args.family)  # an unknown family is bad input (status 2), not a failed contract
    if args.checkpoint is not None and not Path(args.checkpoint).exists():
        raise RewritingError(f"checkpoint {args.checkpoint} does not exist")
    checks = check_plugin(args.family, args.checkpoint)
    print(table(checks))
    return 0 if all(c.passed for c in checks) else 1
