"""`project` (a photo into the model's latent space) and `project-eval` (how well that works)."""

from __future__ import annotations

import argparse
import os
import sys

from PIL import Image

from rewriting import __version__
from rewriting.atomic import as_json, check_output, write_atomically, write_folder
from rewriting.errors import RewritingError
from rewriting.limits import MAX_APP_SAMPLES
from rewriting.metrics import held_out_samples
from rewriting.photo import check_crop, default_crop, open_photo, parse_crop, prepare, show_crop
from rewriting.project import CANDIDATES, STARTS, STEPS, project
from rewriting_lab import project_eval
from rewriting_lab.machine import machine
from zoo.hub import load_any

from .common import DEFAULT_MODEL, int_range, open_edits, progress

#: The files `project` writes into its folder.
PROJECTION_FILES = ("latent.safetensors", "reconstruction.png", "target.png", "crop.png",
                    "metrics.json")


def add_project(sub: argparse._SubParsersAction) -> None:
    """`project PHOTO --out DIR`: the latent that reproduces a photo."""
    p = sub.add_parser("project", help="find the latent that reproduces a photo")
    p.add_argument("photo", help="image file (PNG, JPEG, ...)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--out", required=True, help="folder for latent.safetensors, "
                   "reconstruction.png, target.png, crop.png and metrics.json")
    p.add_argument("--crop", help="LEFT,TOP,SIDE: the square of the photo to use "
                   "(default: around the face for a face model, else the largest centred "
                   "square)")
    p.add_argument("--steps", type=int_range(1, 10_000), default=STEPS)
    p.add_argument("--starts", type=int_range(1, CANDIDATES), default=STARTS)
    p.add_argument("--single-w", action="store_true",
                   help="StyleGAN families: fit one w for every layer and keep the noise fixed")
    p.set_defaults(run=cmd_project)


def add_project_eval(sub: argparse._SubParsersAction) -> None:
    """`project-eval --out FILE`: projection of held-out samples (and photos), as JSON."""
    p = sub.add_parser("project-eval", help="project held-out generated samples; write JSON")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--samples", type=int_range(1, MAX_APP_SAMPLES), default=32)
    p.add_argument("--steps", type=int_range(1, 10_000), default=STEPS)
    p.add_argument("--photo", action="append", default=[], help="also project this photo")
    p.add_argument("--crop", action="append", default=[], help="LEFT,TOP,SIDE per --photo")
    p.add_argument("--edit", action="append", default=[], metavar="DELTA",
                   help="with --photo: how much these edits change the projected photos and "
                   "the held-out samples")
    p.add_argument("--out", required=True, help="JSON file for per-image and mean figures")
    p.set_defaults(run=cmd_project_eval)


def cmd_project(args: argparse.Namespace) -> None:
    """Project the photo's crop; write the latent, the pictures and the figures."""
    out = check_output(args.out, folder=True, names=PROJECTION_FILES)
    photo = open_photo(args.photo)
    generator = load_any(args.model)
    crop, how = ((check_crop(photo, parse_crop(args.crop)), "given") if args.crop
                 else default_crop(photo, generator.face_framing))
    target = prepare(photo, generator.image_size, crop)
    report = progress("projection", "steps")
    projection = project(generator, target, steps=args.steps, starts=args.starts,
                         progress=lambda done, total: report(done, total) if done % 10 == 0
                         or done == total else None, per_layer=not args.single_w)
    metrics = {**projection.metrics, "photo": str(args.photo), "crop": str(crop),
               "crop_chosen": how, "tool_version": __version__}
    images = (projection.reconstruction, target, show_crop(photo, crop))
    write_folder(out, dict(zip(PROJECTION_FILES, (
        projection.save,
        *(lambda tmp, im=image: Image.fromarray(im).save(tmp, format="PNG") for image in images),
        as_json(metrics),
    ), strict=True)))
    print(f"projected {args.photo} (crop {crop}, {how}) into {generator.name}: PSNR "
          f"{metrics['psnr']:.2f} dB (model's mean image: {metrics['psnr_mean_image']:.2f} dB), "
          f"SSIM {metrics['ssim']:.3f}, {metrics['seconds']:.1f} s; wrote {out}/")


def cmd_project_eval(args: argparse.Namespace) -> None:
    """Project held-out samples and the given photos; write per-image and mean figures."""
    out = check_output(args.out)
    photos = [open_photo(path) for path in args.photo]
    generator = load_any(args.model)
    if args.crop and len(args.crop) != len(photos):
        raise RewritingError("give one --crop per --photo, or none")
    chosen = ([(check_crop(p, parse_crop(c)), "given") for p, c in zip(photos, args.crop,
                                                                       strict=True)]
              if args.crop else [default_crop(p, generator.face_framing) for p in photos])
    stack = open_edits(generator, args.edit)
    numbers = held_out_samples(args.samples)
    result = project_eval.on_samples(generator, numbers, args.steps,
                                     log=lambda line: print(line, file=sys.stderr))
    found = [project(generator, prepare(p, generator.image_size, c), steps=args.steps)
             for p, (c, _) in zip(photos, chosen, strict=True)]
    result["photos"] = [{**f.metrics, "photo": path, "crop": str(c), "crop_chosen": how}
                        for f, path, (c, how) in zip(found, args.photo, chosen, strict=True)]
    if stack.deltas and found:
        result["edit_effect"] = {"edits": args.edit, **project_eval.edit_effect(
            generator, found, numbers, stack.weights())}
    report = {"model": generator.name, "held_out_samples": numbers, **result,
              "tool_version": __version__, **machine(),
              "load_average_after": os.getloadavg()[0]}
    write_atomically(out, as_json(report))
    s = result["summary"]
    print(f"{generator.name}: mean PSNR {s['psnr_mean']:.2f} dB over {s['images']} held-out "
          f"samples (model's mean image {s['psnr_mean_image_mean']:.2f} dB, gain "
          f"{s['gain_over_mean_image_db']:.2f} dB), SSIM {s['ssim_mean']:.3f}, "
          f"{s['seconds_per_image_mean']:.1f} s per image; wrote {args.out}")
