"""`python -m rewriting`: list models, render samples, compute statistics, edit, export.

This is the one place in `rewriting/` that wires the engine to the zoo of models. Bad input
prints one line and exits with status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from . import __version__
from .atomic import (
    as_json,
    check_output,
    new_folders,
    output_errors,
    write_atomically,
    write_each,
    write_folder,
)
from .delta import Delta, EditStack
from .early import EARLY_SAMPLES, RefiningStats
from .editdir import EDIT_FILES, before_after_picture, write_edit_dir
from .efficacy import RuleProbe
from .errors import RewritingError, one_line
from .generator import Generator
from .limits import (
    MAX_APP_SAMPLES,
    MAX_SAMPLES_PER_CALL,
    MAX_SCALE,
    check_latents,
    check_picture,
    parse_samples,
)
from .metrics import held_out_samples
from .parallel import init_from_environment, is_main, rank_and_size, share
from .project import CANDIDATES, STARTS, STEPS
from .render import grid, render
from .request import MAX_STRENGTH, parse_request, read_request
from .rewrite import DEFAULT_STRENGTH, check_request, execute
from .stats import default_cache_dir, key_stats, save_atomic
from .suggest import SPECIFICITY_TARGET, layer_table, suggest_layer

#: The request set `evaluate` runs by default, kept in the repository.
EVALUATION_SET = Path(__file__).parent.parent / "examples" / "evaluation"
#: Samples `render` draws per call: bounds its memory however many --samples asks for.
FRAMES_PER_CALL = 64
#: The files `project` writes into its folder.
PROJECTION_FILES = ("latent.safetensors", "reconstruction.png", "target.png", "crop.png",
                    "metrics.json")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line with exit status 2, like bad input."""

    def error(self, message: str) -> NoReturn:
        raise RewritingError(f"{message} (see {self.prog} --help)")


def _count(low: int, high: int) -> Callable[[str], int]:
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


def _progress(label: str, unit: str = "samples"):
    """A progress line on stderr, for long work."""

    def report(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{label}: {done}/{total} {unit}", end=end, file=sys.stderr, flush=True)

    return report


def load_model(name: str) -> Generator:
    """A model by catalog name, or an edit published with `push` (hub:OWNER/NAME), via the zoo."""
    from zoo.hub import load_any

    return load_any(name)


def load_stack(generator: Generator, paths: Sequence[str]) -> EditStack:
    """The model with the given delta files applied in order."""
    return EditStack(generator, [Delta.load(p) for p in paths])


def cmd_models(args: argparse.Namespace) -> None:
    from zoo.fetch import cached_path
    from zoo.registry import list_models, pinning

    entries = list_models(args.filter)
    pins = [pinning(m.source) for m in entries]
    local = [cached_path(m.source) for m in entries]  # no network: the caches only
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


def cmd_sample(args: argparse.Namespace) -> None:
    if args.raw:
        from zoo.loader import build_from_file

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
        raw = generator.synthesize(z, truncation).contiguous()
        write_atomically(out, lambda tmp: save_file({"image": raw}, tmp))
        print(f"wrote {args.raw} (image {list(raw.shape)})")
        return
    if args.out is None:
        raise RewritingError("give --out grid.png (or --raw with --checkpoint)")
    out = check_output(args.out)
    if args.latents:
        sample_latents(args, out)
        return
    numbers = parse_samples(args.samples)
    stack = published_stack(args.model, args.revert) if args.revert else None
    generator = stack.generator if stack else load_model(args.model)
    columns = min(args.columns, len(numbers))
    check_picture(-(-len(numbers) // columns), columns, generator.image_size, args.scale)
    stack = EditStack(generator, [*(stack.deltas if stack else []),
                                  *load_stack(generator, args.edit).deltas])
    truncation = generator.check_truncation(args.truncation)
    images = render(generator, numbers, truncation, stack.weights())
    rows = [images[i : i + columns] for i in range(0, len(images), columns)]
    picture = grid(rows, scale=args.scale)
    write_atomically(out, lambda tmp: picture.save(tmp, format="PNG"))
    print(f"wrote {args.out} ({len(numbers)} samples)")


def published_stack(model: str, revert: Sequence[int]) -> EditStack:
    """The stack of edits published as `model` (hub:OWNER/NAME) without the edits numbered (from
    1) in `revert`."""
    from zoo.hub import load_any_stack

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


def sample_latents(args: argparse.Namespace, out: Path) -> None:
    """`sample --latents FILE --out grid.png`: projected photos under the edit stack."""
    from .project import load_latent, render_latent

    generator = load_model(args.model)
    projection = load_latent(args.latents, generator)
    count = len(projection.latent)
    columns = min(args.columns, count)
    check_picture(-(-count // columns), columns, generator.image_size, args.scale)
    stack = load_stack(generator, args.edit)
    images = render_latent(generator, projection, stack.weights())
    rows = [images[i : i + columns] for i in range(0, count, columns)]
    picture = grid(rows, scale=args.scale)
    write_atomically(out, lambda tmp: picture.save(tmp, format="PNG"))
    print(f"wrote {args.out} ({count} projected images, {len(stack.deltas)} edits applied)")


def cmd_project(args: argparse.Namespace) -> None:
    from .photo import check_crop, default_crop, open_photo, parse_crop, prepare, show_crop
    from .project import project

    out = check_output(args.out, folder=True, names=PROJECTION_FILES)
    photo = open_photo(args.photo)
    generator = load_model(args.model)
    crop, how = ((check_crop(photo, parse_crop(args.crop)), "given") if args.crop
                 else default_crop(photo, generator.face_framing))
    target = prepare(photo, generator.image_size, crop)
    progress = _progress("projection", "steps")
    projection = project(generator, target, steps=args.steps, starts=args.starts,
                         progress=lambda done, total: progress(done, total) if done % 10 == 0
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
    from . import project_eval
    from .photo import check_crop, default_crop, open_photo, parse_crop, prepare
    from .project import project

    out = check_output(args.out)
    photos = [open_photo(path) for path in args.photo]
    generator = load_model(args.model)
    if args.crop and len(args.crop) != len(photos):
        raise RewritingError("give one --crop per --photo, or none")
    chosen = ([(check_crop(p, parse_crop(c)), "given") for p, c in zip(photos, args.crop,
                                                                       strict=True)]
              if args.crop else [default_crop(p, generator.face_framing) for p in photos])
    stack = load_stack(generator, args.edit)
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


def add_project_commands(sub: argparse._SubParsersAction, default: str) -> None:
    """`project PHOTO` (a photo into the model's latent space) and `project-eval`."""
    p = sub.add_parser("project", help="find the latent that reproduces a photo")
    p.add_argument("photo", help="image file (PNG, JPEG, ...)")
    p.add_argument("--model", default=default)
    p.add_argument("--out", required=True, help="folder for latent.safetensors, "
                   "reconstruction.png, target.png, crop.png and metrics.json")
    p.add_argument("--crop", help="LEFT,TOP,SIDE: the square of the photo to use "
                   "(default: around the face for a face model, else the largest centred "
                   "square)")
    p.add_argument("--steps", type=_count(1, 10_000), default=STEPS)
    p.add_argument("--starts", type=_count(1, CANDIDATES), default=STARTS)
    p.add_argument("--single-w", action="store_true",
                   help="StyleGAN families: fit one w for every layer and keep the noise fixed")
    p.set_defaults(run=cmd_project)

    p = sub.add_parser("project-eval", help="project held-out generated samples; write JSON")
    p.add_argument("--model", default=default)
    p.add_argument("--samples", type=_count(1, MAX_APP_SAMPLES), default=32)
    p.add_argument("--steps", type=_count(1, 10_000), default=STEPS)
    p.add_argument("--photo", action="append", default=[], help="also project this photo")
    p.add_argument("--crop", action="append", default=[], help="LEFT,TOP,SIDE per --photo")
    p.add_argument("--edit", action="append", default=[], metavar="DELTA",
                   help="with --photo: how much these edits change the projected photos and "
                   "the held-out samples")
    p.add_argument("--out", required=True, help="JSON file for per-image and mean figures")
    p.set_defaults(run=cmd_project_eval)


def cmd_convert(args: argparse.Namespace) -> None:
    from zoo.checkpoint import CONFIG, WEIGHTS
    from zoo.convert import convert

    out = check_output(args.out, folder=True, names=(WEIGHTS, CONFIG))
    with output_errors(out), new_folders(out.parent):
        config = convert(args.network, out)
    print(f"wrote {args.out}/model.safetensors and config.json ({config['family']}, "
          f"source sha256 {config['source_sha256'][:12]}); load it with --checkpoint {args.out}")


def add_convert_command(sub: argparse._SubParsersAction) -> None:
    """`convert NETWORK.pkl --out DIR`: an NVIDIA network pickle to safetensors + config."""
    p = sub.add_parser("convert", help="convert an NVIDIA network pickle to safetensors")
    p.add_argument("network", help="network pickle (.pkl) of StyleGAN2-ADA or StyleGAN3")
    p.add_argument("--out", required=True, help="new folder for model.safetensors + config.json")
    p.set_defaults(run=cmd_convert)


def cmd_stats(args: argparse.Namespace) -> None:
    out = None if args.out is None else check_output(args.out)
    generator = load_model(args.model)
    spec = generator.layer(args.layer)
    truncation = generator.check_truncation(args.truncation)
    started = time.perf_counter()
    progress = _progress("statistics") if is_main() else None
    stats = key_stats(generator, spec, truncation, samples=args.samples, progress=progress)
    if out and is_main():
        save_atomic(out, stats)
    if not is_main():
        return
    print(
        f"C for {generator.name} {spec.name}: {stats.second_moment.shape[0]} key channels, "
        f"{stats.count} keys from {args.samples} samples, {time.perf_counter() - started:.1f} s"
    )


def cmd_render(args: argparse.Namespace) -> None:
    numbers = parse_samples(args.samples)
    out = check_output(args.out, folder=True, names=map(frame_name, numbers))
    generator = load_model(args.model)
    stack = load_stack(generator, args.edit)
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


@contextmanager
def timed(phases: dict[str, float], name: str) -> Iterator[None]:
    """Record the seconds the block takes as `phases[name]`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = time.perf_counter() - start


def cmd_edit(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    phases: dict[str, float] = {}
    out = check_output(args.out, folder=True, names=EDIT_FILES)
    request = read_request(args.request, args.model, args.layer)
    if args.strength is not None:
        request = replace(request, strength=check_strength(args.strength))
    with timed(phases, "load"):
        generator = load_model(request.model)
        stack = load_stack(generator, args.edit)
    held_out = held_out_samples(args.held_out, request.samples())
    if request.layer == "auto":
        with timed(phases, "suggest_layer"):
            suggestion = suggest_layer(generator, request, held_out, stack, args.stats_samples,
                                       log=lambda line: print(line, file=sys.stderr))
        print(f"layers for this request (* suggested, specificity >= {SPECIFICITY_TARGET}):")
        print(layer_table(suggestion))
        request = replace(request, layer=suggestion.layer)
    spec = check_request(generator, request)
    check_picture(3, args.show, generator.image_size, args.scale)
    truncation = generator.check_truncation(request.truncation)
    with timed(phases, "statistics"):
        if args.early_stats:
            refining = RefiningStats(generator, spec, truncation, args.stats_samples,
                                     args.early_stats)
            stats = refining.current()
        else:
            stats = key_stats(generator, spec, truncation, samples=args.stats_samples,
                              progress=_progress("statistics"))
    with timed(phases, "execute"):
        result = execute(generator, request, stack, stats)
    edited = EditStack(generator, [*stack.deltas, result.delta])
    after = edited.weights()
    with timed(phases, "measure"):
        probe = RuleProbe(generator, result.problem, held_out)
        passes = probe.run(after)
        change = {**probe.measure(after, passes),
                  "random_floor": probe.floor(after, result.delta.rank)}
    with timed(phases, "picture"):
        # Show the held-out samples where the rule applies most (chosen by the context key
        # alone, before the edit, not by how much they changed), from the measure's renders.
        shown = probe.strongest(args.show)
        rows = [probe.numbers.index(n) for n in shown]
        picture = before_after_picture(probe.original[rows], passes.held_out[rows], args.scale,
                                       [probe.goal_box(n) for n in shown])
    if args.early_stats:
        with timed(phases, "refine_statistics"):
            refining.wait()  # so that the next edit finds the full statistics cached
    metrics = {
        **result.delta.metrics,
        **change,
        "layer": spec.name,
        "model": generator.name,
        "stacked_on": len(stack.deltas),
        "seconds_phases": phases,
        "seconds_total": time.perf_counter() - started,
        "tool_version": __version__,
    }
    result.delta.metrics = metrics
    write_edit_dir(out, result.delta, request.to_json(), picture, metrics)
    floor = change["random_floor"]
    print(
        f"edited {generator.name} {spec.name} at strength {result.delta.strength:g}: efficacy "
        f"{change['efficacy']:.2f} (random {floor['efficacy']:.2f}), generalization "
        f"{change['generalization']:.2f} (random {floor['generalization']:.2f}), specificity "
        f"{change['specificity']:.2f} (random {floor['specificity']:.2f}), selectivity "
        f"{change['selectivity']:.1f}, ||dW||/||W0|| {metrics['delta_norm_ratio']:.3f}, "
        f"solve {metrics['seconds_solve'] * 1000:.1f} ms; wrote {out}/"
    )


def check_strength(value: float) -> float:
    """A strength from the command line, within the range a request may give."""
    if not 0.0 <= value <= MAX_STRENGTH:
        raise RewritingError(f"--strength must be between 0 and {MAX_STRENGTH:g}, got {value}")
    return value


def machine() -> dict[str, str]:
    """Where figures were measured, for the tables that quote them."""
    import platform

    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "processor": platform.processor() or "unknown",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": str(torch.get_num_threads()),
    }


def cmd_evaluate(args: argparse.Namespace) -> None:
    from . import evaluate

    out = check_output(args.out, folder=True, names=evaluate.RESULT_FILES)
    if not Path(args.requests).is_dir():
        raise RewritingError(f"--requests {args.requests} is not a folder of request files")
    paths = sorted(Path(args.requests).glob("*.json"))
    if not paths:
        raise RewritingError(f"no request files (*.json) in {args.requests}")
    requests = [(p.stem, read_request(p)) for p in paths]
    generator = load_model(requests[0][1].model)
    rows, points = evaluate.evaluate(
        generator, requests, held_out=args.held_out, finetune_steps=args.finetune_steps,
        curves=not args.no_curves,
    )
    context = {
        "model": generator.name, "held_out_samples": args.held_out,
        "finetune_steps": args.finetune_steps, "tool_version": __version__, **machine(),
    }
    evaluate.write_results(rows, points, out, context)
    print(evaluate.markdown_table(rows))
    print(f"wrote {args.out}/results.json, results.md, rule_change.png")


def random_stylegan2(size: int = 256) -> Generator:
    """A StyleGAN2 of config-f shapes with random weights (speed only: no download needed)."""
    from plugins.base import LocalFile, ModelEntry
    from plugins.stylegan2 import PLUGIN, StyleGAN2Net

    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    channels = [table[4 * 2**j] for j in range(size.bit_length() - 2)]
    torch.manual_seed(0)
    net = StyleGAN2Net(512, 8, channels)
    entry = ModelEntry(
        f"stylegan2-random-{size}", "stylegan2", LocalFile("(random)"), "none",
        default_layer="layer8",
    )
    return PLUGIN.build({"g_ema": net.state_dict()}, entry, "random")


def app_latency(visitors: int, rounds: int) -> dict:
    """The running app's latencies (app_bench, beside app.py: the engine never imports gradio)."""
    checkout = str(Path(__file__).resolve().parents[1])
    if (Path(checkout) / "app_bench.py").exists() and checkout not in sys.path:
        sys.path.append(checkout)
    try:
        import app_bench
    except ImportError as err:
        raise RewritingError(f"the app benchmark needs app.py and gradio_client ({err}): run "
                             "from the repository with the test requirements, or pass --no-app"
                             ) from None
    return app_bench.app_latency(visitors, rounds, default_cache_dir().parent)


#: The benchmark's edit on the random StyleGAN2: a square of sample 1 pasted onto sample 2.
STYLEGAN2_REQUEST = {
    "model": "stylegan2-random-256", "layer": "layer8",
    "copy": {"sample": 1, "mask": [96, 96, 160, 160]},
    "paste": {"sample": 2, "mask": [96, 96, 160, 160]},
}


def versus_reference(checkout: str | None, repeats: int) -> dict:
    """Our StyleGAN2 against rosinality's (a checkout at `checkout`) at 256 px, same weights,
    batch 1; the figures are null without a checkout."""
    from . import bench

    if checkout is None:
        return {"reference_throughput_batch_1": None, "speedup_vs_reference": None,
                "reference": None}
    from zoo.reference_stylegan2 import reference_images, reference_pair

    reference, ours = reference_pair(Path(checkout))
    side = bench.versus_reference(lambda z: ours.synthesize(z, None),
                                  lambda z: reference_images(reference, z),
                                  ours.latents(range(1)), repeats)
    return {"reference_throughput_batch_1": side["reference_images_per_second"],
            "speedup_vs_reference": side["speedup"], "reference": side}


def cmd_bench(args: argparse.Namespace) -> None:
    from . import bench

    out = None if args.json is None else check_output(args.json)
    if args.reference is not None:
        from zoo.reference_stylegan2 import check_checkout

        check_checkout(args.reference)
    repeats = args.repeats
    samples = 200 if args.quick else 1000
    generator = load_model("dcgan-digiface")
    request = read_request(args.request)
    report: dict = {"machine": machine(), "quick": args.quick, "tool_version": __version__}
    print(f"benchmark on {report['machine']['machine']} (torch {torch.__version__})")
    report["dcgan-digiface"] = {
        "throughput_batch_1": bench.throughput(generator, 1, repeats * 4),
        "throughput_batch_64": bench.throughput(generator, 64, repeats),
        "statistics": bench.statistics_cost(generator, None, samples, repeats),
        "edit": bench.edit_cost(generator, request, repeats * 2),
        "memory": bench.memory(generator, request),
        "projection": bench.projection_cost(generator, 2 if args.quick else 4,
                                            50 if args.quick else STEPS),
    }
    if not args.no_stylegan2:
        big = random_stylegan2()
        report["stylegan2-random-256"] = {
            "throughput_batch_1": bench.throughput(big, 1, repeats),
            "throughput_batch_8": bench.throughput(big, 8, max(1, repeats // 2)),
            "statistics": bench.statistics_cost(big, "layer8", 20 if args.quick else 1000, 1),
            **bench.first_edit(big, parse_request(STYLEGAN2_REQUEST), *(
                (10, 30) if args.quick else (EARLY_SAMPLES, 1000))),
            **versus_reference(args.reference, repeats),
        }
    report["cli"] = bench.cli_edit_cost(Path(args.request), 1 if args.quick else 3)
    if not args.no_app:
        report["app"] = app_latency(args.app_visitors, args.app_rounds)
    print(bench.table(report))
    if out:
        write_atomically(out, as_json(report))
        print(f"wrote {args.json}")


def cmd_export(args: argparse.Namespace) -> None:
    out = check_output(args.out)
    generator = load_model(args.model)
    stack = load_stack(generator, args.edit)
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


def cmd_push(args: argparse.Namespace) -> None:
    from huggingface_hub import get_token

    from zoo.publish import publish

    commit = publish(
        args.dir, args.repo, get_token(), private=args.private, delta_only=args.delta_only,
        exist_ok=args.exist_ok, with_stats=args.with_stats,
    )
    what = f"a stack of {len(args.dir)} edits" if len(args.dir) > 1 else "the edit"
    print(f"published {what} as {commit.repo_url} (commit {commit.oid[:10]}); "
          f"load it with --model hub:{args.repo}")


def cmd_check_plugin(args: argparse.Namespace) -> int:
    from zoo.conformance import check_plugin, table
    from zoo.registry import plugin

    plugin(args.family)  # an unknown family is bad input (status 2), not a failed contract
    if args.checkpoint is not None and not Path(args.checkpoint).exists():
        raise RewritingError(f"checkpoint {args.checkpoint} does not exist")
    checks = check_plugin(args.family, args.checkpoint)
    print(table(checks))
    return 0 if all(c.passed for c in checks) else 1


def add_check_plugin_command(sub: argparse._SubParsersAction) -> None:
    """`check-plugin FAMILY [--checkpoint FILE]`: every contract the engine relies on."""
    p = sub.add_parser("check-plugin", help="check a generator family against the engine's "
                       "contracts; exit status 1 if any fails")
    p.add_argument("family", help="generator family, e.g. dcgan (see `models`)")
    p.add_argument("--checkpoint", help="checkpoint to build from (default: the family's first "
                   "catalog model)")
    p.set_defaults(run=cmd_check_plugin)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m rewriting", description="Rewrite the rules of a pretrained generator."
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    default = "dcgan-digiface"

    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("filter", nargs="?", default="*", help="glob on model names, e.g. 'stylegan2*'")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_models)

    p = sub.add_parser("sample", help="render samples (optionally edited) as a grid")
    p.add_argument("--model", default=default)
    p.add_argument("--samples", default="0-15")
    p.add_argument("--truncation", type=float)
    p.add_argument("--edit", action="append", default=[], metavar="DELTA")
    p.add_argument("--revert", action="append", type=int, default=[], metavar="N",
                   help="with --model hub:OWNER/NAME of a published stack: leave out its edit N")
    p.add_argument("--out", help="grid PNG to write")
    p.add_argument("--columns", type=_count(1, MAX_SAMPLES_PER_CALL), default=8)
    p.add_argument("--scale", type=_count(1, MAX_SCALE), default=2)
    p.add_argument("--checkpoint", help="with --raw: a checkpoint file")
    p.add_argument("--family", help="with --raw: the checkpoint's generator family")
    p.add_argument("--latents", help="a latent file written by `project` (rendered instead of "
                   "--samples); with --raw: safetensors holding latents under 'z'")
    p.add_argument("--raw", help="write the raw output tensor under 'image' to this file")
    p.add_argument("--labels", help="with --raw: safetensors holding class labels under 'c'")
    p.set_defaults(run=cmd_sample)

    p = sub.add_parser("stats", help="compute (or reuse) the key statistics C of a layer")
    p.add_argument("--model", default=default)
    p.add_argument("--layer")
    p.add_argument("--samples", type=_count(1, MAX_SAMPLES_PER_CALL), default=1000)
    p.add_argument("--truncation", type=float)
    p.add_argument("--out", help="also write C and the key sample to this safetensors file")
    p.set_defaults(run=cmd_stats)

    p = sub.add_parser("render", help="render many samples to PNG files named by sample number")
    p.add_argument("--model", default=default)
    p.add_argument("--samples", required=True, help="e.g. 0-9999")
    p.add_argument("--truncation", type=float)
    p.add_argument("--edit", action="append", default=[], metavar="DELTA")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(run=cmd_render)

    p = sub.add_parser("edit", help="execute an edit request, write its delta and pictures")
    p.add_argument("request", help="edit request JSON (this tool's or the paper's format)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", help="model (required for the paper's format)")
    p.add_argument("--layer", help="layer (required for the paper's format); 'auto' solves at "
                   "every layer, prints the table and uses the suggested one")
    p.add_argument("--strength", type=float,
                   help="factor on the solved update (default: the request's, else "
                   f"{DEFAULT_STRENGTH:g})")
    p.add_argument("--edit", action="append", default=[], metavar="DELTA",
                   help="earlier edits to apply first")
    p.add_argument("--stats-samples", type=_count(1, MAX_SAMPLES_PER_CALL), default=1000)
    p.add_argument("--early-stats", type=_count(1, MAX_SAMPLES_PER_CALL), metavar="N",
                   help="when the statistics are not cached, solve with N samples' statistics "
                   "shrunk towards their diagonal while the full ones are computed alongside")
    p.add_argument("--held-out", type=_count(1, MAX_SAMPLES_PER_CALL), default=64)
    p.add_argument("--show", type=_count(1, MAX_APP_SAMPLES), default=12,
                   help="held-out samples in the picture: those where the context fires most")
    p.add_argument("--scale", type=_count(1, MAX_SCALE), default=2)
    p.set_defaults(run=cmd_edit)

    p = sub.add_parser("bench", help="measure speed and memory; print a table, write JSON")
    p.add_argument("--json", help="write the figures to this JSON file")
    p.add_argument("--request", default=str(EVALUATION_SET.parent / "eye-to-mouth.json"))
    p.add_argument("--repeats", type=_count(1, 1000), default=5)
    p.add_argument("--quick", action="store_true",
                   help="fewer statistics samples (200, and 20 on StyleGAN2) instead of 1000")
    p.add_argument("--no-stylegan2", action="store_true", help="skip the 256 px StyleGAN2")
    p.add_argument("--no-app", action="store_true",
                   help="skip the running app's latencies (page open, Execute, sample, Revert)")
    p.add_argument("--app-visitors", type=_count(2, 16), default=4,
                   help="visitors acting at once in the app's second run (the first has one)")
    p.add_argument("--app-rounds", type=_count(1, 100), default=3,
                   help="rounds of open, Execute, open a sample, Revert per visitor")
    p.add_argument("--reference", metavar="PATH",
                   help="a checkout of rosinality/stylegan2-pytorch to measure our StyleGAN2 "
                   "against (same weights, its CPU fallbacks); without it those figures are null")
    p.set_defaults(run=cmd_bench)

    p = sub.add_parser("evaluate", help="compare ours with the paper's baselines on a request set")
    p.add_argument("--requests", default=str(EVALUATION_SET), help="folder of requests (*.json)")
    p.add_argument("--out", default="evaluation")
    p.add_argument("--held-out", type=_count(1, MAX_SAMPLES_PER_CALL), default=256)
    p.add_argument("--finetune-steps", type=_count(1, 100_000), default=100)
    p.add_argument("--no-curves", action="store_true",
                   help="skip the strength and regularisation curves (faster)")
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("export", help="write the full edited weights as safetensors")
    p.add_argument("--model", default=default)
    p.add_argument("--edit", action="append", default=[], metavar="DELTA", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(run=cmd_export)

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

    add_convert_command(sub)
    add_project_commands(sub, default)
    add_check_plugin_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input prints one line and gives exit status 2."""
    try:
        args = build_parser().parse_args(argv)
        init_from_environment()
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
