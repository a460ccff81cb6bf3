"""`push` (an edit or a stack of edits onto the Hugging Face Hub) and `convert` (NVIDIA pickles)."""

from __future__ import annotations

import argparse

from huggingface_hub import get_token

from rewriting.atomic import check_output, new_folders, output_errors
from zoo.checkpoint import CONFIG, WEIGHTS
from zoo.convert import convert
from zoo.publish import publish


def add_push(sub: argparse._SubParsersAction) -> None:
    """`push DIR... --repo OWNER/NAME`: publish what `edit` wrote."""
    p = sub.add_parser("push", help="publish an edit, or a stack of edits, on the Hugging Face "
                       "Hub (token: HF_TOKEN)")
    p.add_argument("dir", nargs="+", help="folder written by `edit`; for a stack, the folders of "
                   "every edit in the order made (each made with --edit on the ones before)")
    p.add_argument("--repo", required=True, help="OWNER/NAME")
    p.add_argument("--private", action="store_true")
    p.add_argument("--delta-only", action="store_true",
                   help="push only the delta; loading fetches the base model")
    p.add_argument("--with-stats", action="store_true",
                   help="also publish the key statistics of each edited layer (cached or "
                   "computed), which loading the model adopts when their key matches")
    p.add_argument("--exist-ok", action="store_true",
                   help="add a commit to an existing repository instead of refusing")
    p.set_defaults(run=cmd_push)


def add_convert(sub: argparse._SubParsersAction) -> None:
    """`convert NETWORK.pkl --out DIR`: an NVIDIA network pickle to safetensors + config."""
    p = sub.add_parser("convert", help="convert an NVIDIA network pickle to safetensors")
    p.add_argument("network", help="network pickle (.pkl) of StyleGAN2-ADA or StyleGAN3")
    p.add_argument("--out", required=True, help="new folder for model.safetensors + config.json")
    p.set_defaults(run=cmd_convert)


def cmd_push(args: argparse.Namespace) -> None:
    """Publish with the Hub client's token; print where and how to load it."""
    commit = publish(
        args.dir, args.repo, get_token(), private=args.private, delta_only=args.delta_only,
        exist_ok=args.exist_ok, with_stats=args.with_stats,
    )
    what = f"a stack of {len(args.dir)} edits" if len(args.dir) > 1 else "the edit"
    print(f"published {what} as {commit.repo_url} (commit {commit.oid[:10]}); "
          f"load it with --model hub:{args.repo}")


def cmd_convert(args: argparse.Namespace) -> None:
    """Write model.safetensors and config.json into a new folder."""
    out = check_output(args.out, folder=True, names=(WEIGHTS, CONFIG))
    with output_errors(out), new_folders(out.parent):
        config = convert(args.network, out)
    print(f"wrote {args.out}/model.safetensors and config.json ({config['family']}, "
          f"source sha256 {config['source_sha256'][:12]}); load it with --checkpoint {args.out}")
