"""`sample` (a grid, or a raw tensor), `render` (one PNG per sample) and `export` (weights)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from rewriting import __version__
from rewriting.atomic import check_output, write_atomically, write_each
from rewriting.delta import EditStack
from rewriting.errors import RewritingError
from rewriting.generator import Generator
from rewriting.limits import (
    MAX_SAMPLES_PER_CALL,
    MAX_SCALE,
    check_latents,
    check_picture,
    parse_samples,
)
from rewriting.parallel import rank_and_size, share
from rewriting.project import load_latent, render_latent
from rewriting.render import grid, render
from zoo.hub import load_any, load_any_stack
from zoo.loader import build_from_file

from .common import DEFAULT_MODEL, int_range, open_edits

#: Samples `render` draws per call: bounds its memory however many --samples asks for.
FRAMES_PER_CALL = 64


def add_sample(sub: argparse._SubParsersAction) -> None:
    """`sample --out grid.png`: samples, or projected photos, edited or not, as a grid."""
    p = sub.add_parser("sample", help="render samples (optionally edited) as a grid")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--samples", default="0-15")
    p.add_argument("--truncation", type=float)
    p.add_argument("--edit", action="append", default=[], metavar="DELTA")
    p.add_argument("--revert", action="append", type=int, default=[], metavar="N",
                   help="with --model hub:OWNER/NAME of a published stack: leave out its edit N")
    p.add_argument("--out", help="grid PNG to write")
    p.add_argument("--columns", type=int_range(1, MAX_SAMPLES_PER_CALL), default=8)
    p.add_argument("--scale", type=int_range(1, MAX_SCALE), default=2)
    p.add_argument("--checkpoint", help="with --raw: a checkpoint file")
    p.add_argument("--family", help="with --raw: the checkpoint's generator family")
    p.add_argument("--latents", help="a latent file written by `project` (rendered instead of "
                   "--samples); with --raw: safetensors holding latents under 'z'")
    p.add_argument("--raw", help="write the raw output tensor under 'image' to this file")
    p.add_argument("--labels", help="with --raw: safetensors holding class labels under 'c'")
    p.set_defaults(run=cmd_sample)


def add_render(sub: argparse._SubParsersAction) -> None:
    """`render --samples A-B --out DIR`: one PNG per sample, shared among ranks."""
    p = sub.add_parser("render", help="render many samples to PNG files named by sample number")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--samples", required=True, help="e.g. 0-9999")
    p.add_argument("--truncation", type=float)
    p.add_argument("--edit", action="append", default=[], metavar="DELTA")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(run=cmd_render)


def add_export(sub: argparse._SubParsersAction) -> None:
    """`export --edit DELTA --out FILE`: the full edited weights."""
    p = sub.add_parser("export", help="write the full edited weights as safetensors")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--edit", action="append", default=[], metavar="DELTA", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(run=cmd_export)


def cmd_sample(args: argparse.Namespace) -> None:
    """A grid PNG of numbered samples (or, with --latents, projected photos); with --raw, the
    raw output tensor of a checkpoint for given latents."""
    if args.raw:
        raw_sample(args)
        return
    if args.out is None:
        raise RewritingError("give --out grid.png (or --raw with --checkpoint)")
    out = check_output(args.out)
    if args.latents:
        render_projected(args, out)
        return
    numbers = parse_samples(args.samples)
    stack = published_stack(args.model, args.revert) if args.revert else None
    generator = stack.generator if stack else load_any(args.model)
    columns = min(args.columns, len(numbers))
    check_picture(-(-len(numbers) // columns), columns, generator.image_size, args.scale)
    stack = EditStack(generator, [*(stack.deltas if stack else []),
                                  *open_edits(generator, args.edit).deltas])
    truncation = generator.check_truncation(args.truncation)
    images = render(generator, numbers, truncation, stack.weights())
    rows = [images[i : i + columns] for i in range(0, len(images), columns)]
    picture = grid(rows, scale=args.scale)
    write_atomically(out, lambda tmp: picture.save(tmp, format="PNG"))
    print(f"wrote {args.out} ({len(numbers)} samples)")


def raw_sample(args: argparse.Namespace) -> None:
    """`sample --raw FILE --checkpoint CKPT --family F --latents Z`: the output tensor."""
    if not (args.checkpoint and args.family and args.latents):
        raise RewritingError("--raw needs --checkpoint, --family and --latents")
    out = check_output(args.raw)
    generator = build_from_file(args.checkpoint, args.family)
    try:
        z = load_file(args.latents)["z"]
    except Exception as err:
        raise RewritingError(f"cannot read latents 'z' from {args.latents}: {err}") from None
    z = check_latents(z, generator.z_dim)
    z = with_labels(generator, z, args.labels)
    truncation = None if args.truncation is None else generator.check_truncation(
        args.truncation
    )
    raw = generator.synthesize(z.to(generator.device), truncation).cpu().contiguous()
    write_atomically(out, lambda tmp: save_file({"image": raw}, tmp))
    print(f"wrote {args.raw} (image {list(raw.shape)})")


def published_stack(model: str, revert: Sequence[int]) -> EditStack:
    """The stack of edits published as `model` (hub:OWNER/NAME) without the edits numbered (from
    1) in `revert`."""
    if not model.startswith("hub:"):
        raise RewritingError("--revert needs a stack of edits published on the Hub: hub:OWNER/NAME")
    stack = load_any_stack(model)
    for number in sorted(set(revert), reverse=True):
        if not 1 <= number <= len(stack.deltas):
            raise RewritingError(
                f"--revert {number}: {model} holds {len(stack.deltas)} revertible edit(s)"
            )
        stack.revert(number - 1)
    return stack


def with_labels(generator: Generator, z: torch.Tensor, labels: str | None) -> torch.Tensor:
    """Latents `z` followed by the class labels stored under 'c' in `labels` (if given)."""
    c_dim = getattr(generator, "c_dim", 0)
    if labels is None:
        if c_dim:
            raise RewritingError(f"{generator.name} is conditional: give --labels (key 'c')")
        return z
    try:
        c = load_file(labels)["c"].float()
    except Exception as err:
        raise RewritingError(f"cannot read labels 'c' from {labels}: {err}") from None
    if c.shape != (z.shape[0], c_dim):
        raise RewritingError(
            f"labels must be [{z.shape[0]}, {c_dim}] for this model, got {list(c.shape)}"
        )
    return torch.cat([z.float(), c], dim=1) if c_dim else z


def render_projected(args: argparse.Namespace, out: Path) -> None:
    """`sample --latents FILE --out grid.png`: projected photos under the edit stack."""
    generator = load_any(args.model)
    projection = load_latent(args.latents, generator)
    count = len(projection.latent)
    columns = min(args.columns, count)
    check_picture(-(-count // columns), columns, generator.image_size, args.scale)
    stack = open_edits(generator, args.edit)
    images = render_latent(generator, projection, stack.weights())
    rows = [images[i : i + columns] for i in range(0, count, columns)]
    picture = grid(rows, scale=args.scale)
    write_atomically(out, lambda tmp: picture.save(tmp, format="PNG"))
    print(f"wrote {args.out} ({count} projected images, {len(stack.deltas)} edits applied)")


def cmd_render(args: argparse.Namespace) -> None:
    """This rank's share of the samples, one PNG each, written as they are rendered."""
    numbers = parse_samples(args.samples)
    out = check_output(args.out, folder=True, names=map(frame_name, numbers))
    generator = load_any(args.model)
    stack = open_edits(generator, args.edit)
    truncation = generator.check_truncation(args.truncation)
    mine = share(numbers)
    write_each(out, frames(generator, mine, truncation, stack.weights()))
    print(f"rank {rank_and_size()[0]}: wrote {len(mine)} images to {out}/")


def frame_name(number: int) -> str:
    """The file `render` writes sample `number` to."""
    return f"{number:06d}.png"


def frames(
    generator: Generator, numbers: Sequence[int], truncation: float | None,
    weights: dict[str, torch.Tensor],
) -> Iterator[tuple[str, Callable[[str], object]]]:
    """(file name, writer) of each sample's PNG, rendered FRAMES_PER_CALL at a time as they are
    asked for."""
    for start in range(0, len(numbers), FRAMES_PER_CALL):
        chunk = numbers[start : start + FRAMES_PER_CALL]
        images = render(generator, chunk, truncation, weights)
        for number, image in zip(chunk, images, strict=True):
            yield frame_name(number), lambda tmp, im=image: Image.fromarray(im.numpy()).save(
                tmp, format="PNG")


def cmd_export(args: argparse.Namespace) -> None:
    """The model's weights with the edits applied, with what they are in the metadata."""
    out = check_output(args.out)
    generator = load_any(args.model)
    stack = open_edits(generator, args.edit)
    state = stack.state_dict()
    metadata = {
        "model": generator.name,
        "family": generator.family,
        "weights_sha256": generator.weights_sha256,
        "edits": json.dumps([d.metadata() for d in stack.deltas]),
        "tool_version": __version__,
    }
    write_atomically(out, lambda tmp: save_file(state, tmp, metadata=metadata))
    print(f"wrote {args.out} ({len(stack.deltas)} edits applied)")
