"""Project StyleGAN2 samples rendered from known w back into the model; report the w error.

Usage: python scripts/projection_known_w.py CHECKPOINT OUT.json [--samples N] [--steps S]
(the figures in docs/projection/ come from tests/data/stylegan2_tiny_g_ema.pt).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rewriting.metrics import held_out_samples
from rewriting.project import project
from zoo.loader import build_from_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    g = build_from_file(args.checkpoint, "stylegan2")
    truncation = g.check_truncation(None)
    spread = g.to_latent(g.latents(range(500)), truncation)
    spread = float((spread - spread.mean(0)).flatten(1).norm(dim=1).mean())
    rows = []
    for number in held_out_samples(args.samples):
        truth = g.to_latent(g.latents([number]), truncation)
        image = g.to_image(g.from_latent(truth, g.net))[0].numpy()
        found = project(g, image, steps=args.steps, per_layer=False)
        error = float((found.latent - truth).norm())
        rows.append({"sample": number, "w_error": error, "w_error_over_spread": error / spread,
                     "w_error_relative": error / float(truth.norm()),
                     **{k: found.metrics[k] for k in ("psnr", "ssim", "psnr_mean_image",
                                                      "seconds", "cpu_seconds")}})
        print(rows[-1])
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0] if k != "sample"}
    report = {"checkpoint": Path(args.checkpoint).name, "steps": args.steps,
              "latent": "one w for every layer (--single-w), noise fixed",
              "spread": "mean distance of w+ over 500 samples from their mean",
              "truncation": truncation, "rows": rows, "mean": mean,
              "torch": torch.__version__}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
