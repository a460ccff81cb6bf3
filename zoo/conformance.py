"""The contracts the engine relies on, checked against one generator family's plugin.

`check_plugin` builds the family from a checkpoint (or its first catalog model) and runs every
contract: sample numbering and determinism, batch independence, each declared layer's grids and
`rewrite_key` / `rewrite_value` against the real forward pass, an edit and its revert, renders
resumed after a layer (where the family gives a `tail`), the truncation trick and class labels,
and the device: every tensor stays on the generator's device, images come back on the CPU, and
off the CPU the outputs match the CPU's. Each `Check` says whether it holds and, if not, why, in
one line. `assert_conforms` is the same for a plugin package's own tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from plugins.base import Plugin
from rewriting.checksum import state_digest
from rewriting.delta import Delta, EditStack
from rewriting.device import CPU, exact_matmul
from rewriting.errors import RewritingError, one_line
from rewriting.features import LayerReading, read_layer
from rewriting.generator import Generator, LayerSpec, layer_value, paper_latents
from rewriting.limits import MAX_DELTA_NORM_RATIO
from rewriting.render import midway, render, render_resumed, render_traced

from . import loader, registry
from .fetch import resolve

#: Samples the checks render (small numbers keep them fast on large models too).
SAMPLES = (0, 1)
#: Largest relative difference allowed where two computations must agree up to rounding.
TOLERANCE = 1e-4
#: Largest relative difference allowed between a GPU's float32 outputs (TF32 off) and the
#: CPU's: the same sums in another order.
DEVICE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Check:
    """One contract: its name, whether it holds, and a one-line reason when it does not."""

    name: str
    passed: bool
    reason: str = ""


class Broken(Exception):
    """Raised inside a check with the one-line reason the contract does not hold."""


def _relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest absolute difference over the reference's largest magnitude."""
    got, expected = got.cpu(), expected.cpu()
    scale = float(expected.abs().max()) or 1.0
    return float((got.double() - expected.double()).abs().max()) / scale


def _grid(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def _run(name: str, body: Callable[[], None]) -> Check:
    """Run one contract; a `Broken` or any other error becomes its one-line reason."""
    try:
        body()
    except Broken as err:
        return Check(name, False, one_line(err))
    except Exception as err:  # a plugin may fail in any way: report it, keep checking
        return Check(name, False, f"{type(err).__name__}: {one_line(err)}")
    return Check(name, True)


class _Subject:
    """The generator under check, with its base render and layer readings computed once."""

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.truncation = gen.check_truncation(None)
        self.z = gen.latents(SAMPLES)
        self._raw: torch.Tensor | None = None
        self._readings: dict[str, LayerReading] = {}

    @property
    def raw(self) -> torch.Tensor:
        """The base network's raw output for `SAMPLES`."""
        if self._raw is None:
            self._raw = self.gen.synthesize(self.z, self.truncation)
        return self._raw

    def reading(self, spec: LayerSpec) -> LayerReading:
        """The layer's keys, values and inputs in the base network's forward pass."""
        if spec.name not in self._readings:
            self._readings[spec.name] = read_layer(self.gen, spec, self.z, self.truncation)
        return self._readings[spec.name]


def _check_image(subject: _Subject) -> None:
    gen, raw = subject.gen, subject.raw
    height, width = gen.image_size
    if tuple(raw.shape) != (len(SAMPLES), 3, height, width):
        raise Broken(f"output is {list(raw.shape)}, expected [N, 3, {height}, {width}] "
                     "(image_size)")
    if not bool(torch.isfinite(raw).all()):
        raise Broken("output holds NaN or infinite values")
    images = gen.to_image(raw)
    if images.dtype != torch.uint8 or tuple(images.shape) != (len(SAMPLES), height, width, 3):
        raise Broken(f"to_image gives {images.dtype} {list(images.shape)}, expected uint8 "
                     f"[N, {height}, {width}, 3]")


def _check_numbering(subject: _Subject) -> None:
    gen = subject.gen
    z = gen.latents(range(6))
    if z.shape[1] < gen.z_dim:
        raise Broken(f"latents have {z.shape[1]} columns, fewer than z_dim {gen.z_dim}")
    if not torch.equal(z[:, : gen.z_dim].cpu(), paper_latents(gen.z_dim, range(6))):
        raise Broken("sample N's latent is not row N of the project's numbering "
                     "(rewriting.generator.paper_latents)")
    if not torch.equal(gen.latents([4, 1]), z[[4, 1]]):
        raise Broken("the latent of a sample depends on which other samples are drawn with it")


def _check_deterministic(subject: _Subject) -> None:
    gen = subject.gen
    if not torch.equal(gen.latents(SAMPLES), subject.z):
        raise Broken("latents(N) differ between two calls: the sampler is not deterministic")
    if not torch.equal(gen.synthesize(subject.z, subject.truncation), subject.raw):
        raise Broken("the same latents render differently on a second call")


def _check_batch(subject: _Subject) -> None:
    gen = subject.gen
    alone = gen.synthesize(gen.latents(SAMPLES[-1:]), subject.truncation)
    error = _relative(alone[0], subject.raw[-1])
    if error > TOLERANCE:
        raise Broken(f"sample {SAMPLES[-1]} renders differently alone than in a batch "
                     f"(relative difference {error:.2g} > {TOLERANCE:g})")


def _check_truncation(subject: _Subject) -> None:
    gen = subject.gen
    if gen.default_truncation is None:
        try:
            gen.check_truncation(0.5)
        except ValueError:
            return
        raise Broken("has no truncation trick (default_truncation None) yet accepts 0.5")
    for bad in (-0.1, 1.5):
        try:
            gen.check_truncation(bad)
        except ValueError:
            continue
        raise Broken(f"accepts truncation {bad}, outside 0..1")
    if gen.check_truncation(None) != gen.default_truncation:
        raise Broken("check_truncation(None) is not the default truncation")
    if torch.equal(gen.synthesize(subject.z, 1.0), gen.synthesize(subject.z, 0.0)):
        raise Broken("truncation 0 and 1 render the same images: truncation is ignored")


def _check_labels(subject: _Subject) -> None:
    gen, z = subject.gen, subject.z
    c_dim = int(getattr(gen, "c_dim", 0) or 0)
    if z.shape[1] != gen.z_dim + c_dim:
        raise Broken(f"latents have {z.shape[1]} columns, expected z_dim {gen.z_dim} "
                     f"+ c_dim {c_dim}")
    if c_dim:
        labels = z[:, gen.z_dim :]
        one_hot = bool(((labels == 0) | (labels == 1)).all()) and bool((labels.sum(1) == 1).all())
        if not one_hot:
            raise Broken(f"the {c_dim} label columns of each latent are not one one-hot label")


def _check_overrides(subject: _Subject) -> None:
    """Rendering through a view that overrides the default layer's weight with an equal copy
    gives the base images bit for bit: reverting to the base weights restores every pixel."""
    gen = subject.gen
    spec = gen.layer(None)
    same = {spec.weight: gen.parameter(spec.weight).detach().clone()}
    if not torch.equal(gen.synthesize(subject.z, subject.truncation, same), subject.raw):
        raise Broken(f"overriding {spec.weight} with an equal copy changes the images: the "
                     "network does not render from the weights a view gives it")


def _check_grids(subject: _Subject, spec: LayerSpec) -> None:
    weight = subject.gen.parameter(spec.weight)
    if weight.shape[spec.key_axis] != spec.key_channels:
        raise Broken(f"weight {spec.weight} has {weight.shape[spec.key_axis]} channels on key "
                     f"axis {spec.key_axis}, the layer declares {spec.key_channels}")
    reading = subject.reading(spec)
    keys, values = reading.keys, reading.values
    if keys.shape[1] != spec.key_channels or tuple(keys.shape[2:]) != spec.key_grid:
        raise Broken(f"keys are {keys.shape[1]} channels on {_grid(keys.shape[2:])}, the layer "
                     f"declares {spec.key_channels} on {_grid(spec.key_grid)}")
    if values.shape[1] != spec.value_channels or tuple(values.shape[2:]) != spec.value_grid:
        raise Broken(f"values are {values.shape[1]} channels on {_grid(values.shape[2:])}, the "
                     f"layer declares {spec.value_channels} on {_grid(spec.value_grid)}")
    inner_key = [side - 2 * spec.key_margin for side in spec.key_grid]
    inner_value = [side - 2 * spec.value_margin for side in spec.value_grid]
    stride = inner_value[0] // max(inner_key[0], 1)
    if min(inner_key) < 1 or stride < 1 or inner_value != [side * stride for side in inner_key]:
        raise Broken(f"inside their margins the value grid {_grid(inner_value)} is not the key "
                     f"grid {_grid(inner_key)} times one whole stride on both axes")


def _check_value(subject: _Subject, spec: LayerSpec) -> None:
    reading = subject.reading(spec)
    weight = subject.gen.parameter(spec.weight)
    with torch.no_grad():
        value = layer_value(reading.module, reading.keys, weight, reading.inputs)
        if tuple(value.shape) != tuple(reading.values.shape):
            raise Broken(f"rewrite_value gives {list(value.shape)}, the forward pass "
                         f"{list(reading.values.shape)}")
        error = _relative(value, reading.values)
        if error > TOLERANCE:
            raise Broken(f"rewrite_value disagrees with the forward pass (relative difference "
                         f"{error:.2g} > {TOLERANCE:g})")
        step = torch.randn(weight.shape, generator=torch.Generator().manual_seed(0),
                           device="cpu").to(weight.device)
        step *= 0.1 * weight.norm() / step.norm()
        once = layer_value(reading.module, reading.keys, weight + step, reading.inputs)
        if _relative(once, value) <= TOLERANCE:
            raise Broken(f"changing {spec.weight} does not change rewrite_value: it is not the "
                         "layer's weight")
        if spec.linear:
            twice = layer_value(reading.module, reading.keys, weight + 2 * step, reading.inputs)
            error = _relative(twice - value, 2 * (once - value))
            if error > 1e-3:
                raise Broken(f"declared linear, but the value is not linear in {spec.weight} "
                             f"(relative difference {error:.2g})")


def _probe_delta(gen: Generator, spec: LayerSpec) -> Delta:
    """A rank-1 update of the layer's weight, a tenth of its norm (a plausible edit)."""
    weight = gen.parameter(spec.weight)
    rest = weight.movedim(spec.key_axis, 0).shape[1:]
    seeded = torch.Generator().manual_seed(1)
    lam = torch.randn((1, *rest), generator=seeded, device="cpu")
    directions = torch.nn.functional.normalize(
        torch.randn(1, spec.key_channels, generator=seeded, device="cpu"), dim=1
    )
    delta = Delta(spec.name, spec.weight, spec.key_axis, lam, directions, gen.name,
                  gen.weights_sha256)
    delta.lam = lam * (min(0.1, MAX_DELTA_NORM_RATIO / 2) * float(weight.norm())
                       / float(delta.dense().norm()))
    return delta


def _check_edit(subject: _Subject, spec: LayerSpec) -> None:
    """An edit given as a weight override changes what the layer outputs in the forward pass,
    as rewrite_value predicts."""
    gen = subject.gen
    stack = EditStack(gen, [_probe_delta(gen, spec)])
    edited = stack.weights()
    after = read_layer(gen, spec, subject.z, subject.truncation, edited)
    base = subject.reading(spec)
    if _relative(after.values, base.values) <= TOLERANCE:
        raise Broken(f"an edit of {spec.weight} given as a weight override does not reach the "
                     "layer's output in the forward pass")
    with torch.no_grad():
        predicted = layer_value(base.module, base.keys, edited[spec.weight], base.inputs)
    error = _relative(after.values, predicted)
    if error > TOLERANCE:
        raise Broken(f"the edited forward pass disagrees with rewrite_value under the edit "
                     f"(relative difference {error:.2g} > {TOLERANCE:g})")


def _check_tail(subject: _Subject, spec: LayerSpec) -> None:
    """Renders resumed after the layer by the family's `tail`, unedited and edited, equal
    renders from the latents to the bit (the measures and the gallery mix the two)."""
    gen = subject.gen
    start = midway(gen, subject.z, spec.module, subject.truncation)
    for weights, what in (({}, "unedited"),
                          (EditStack(gen, [_probe_delta(gen, spec)]).weights(), "edited")):
        resumed, _ = render_resumed(gen, start, weights)
        expected, _ = render_traced(gen, subject.z, spec.module, subject.truncation, weights)
        if not torch.equal(resumed, expected):
            worst = int((resumed.int() - expected.int()).abs().max())
            raise Broken(f"{what}, the render resumed after {spec.module} by tail() differs "
                         f"from the render from the latents (by up to {worst} in 255)")


def _check_on_device(subject: _Subject) -> None:
    """Latents, raw output and the default layer's keys and values are on the generator's
    device; rendered images come back on the CPU."""
    gen = subject.gen
    reading = subject.reading(gen.layer(None))
    found = {"latents": subject.z, "the raw output": subject.raw, "keys": reading.keys,
             "values": reading.values}
    away = [f"{name} ({t.device})" for name, t in found.items() if t.device != gen.device]
    if away:
        raise Broken(f"not on the generator's device {gen.device}: {', '.join(away)}")
    images = render(gen, SAMPLES[:1], subject.truncation)
    if images.device != CPU:
        raise Broken(f"render gives images on {images.device}, not on the CPU")


def _check_matches_cpu(subject: _Subject, cpu: Generator) -> None:
    """The generator's raw output and each layer's values match a CPU copy's, in float32 with
    TF32 off, within DEVICE_TOLERANCE."""
    gen, truncation = subject.gen, subject.truncation
    with exact_matmul():
        pairs = [("raw output", gen.synthesize(subject.z, truncation),
                  cpu.synthesize(cpu.latents(SAMPLES), truncation))]
        pairs += [(f"layer {spec.name}'s values",
                   read_layer(gen, spec, subject.z, truncation).values,
                   read_layer(cpu, spec, cpu.latents(SAMPLES), truncation).values)
                  for spec in gen.layers.values()]
    for what, got, expected in pairs:
        error = _relative(got, expected)
        if not error <= DEVICE_TOLERANCE:
            raise Broken(f"{what} on {gen.device} differ from the CPU's (relative difference "
                         f"{error:.2g} > {DEVICE_TOLERANCE:g})")


def _layer_checks(subject: _Subject) -> Iterator[Check]:
    gen = subject.gen
    if gen.default_layer not in gen.layers:
        yield Check("default layer", False,
                    f"default layer {gen.default_layer!r} is not among {list(gen.layers)}")
    for spec in gen.layers.values():
        yield _run(f"layer {spec.name}: grids", lambda s=spec: _check_grids(subject, s))
        yield _run(f"layer {spec.name}: rewrite_value", lambda s=spec: _check_value(subject, s))
        yield _run(f"layer {spec.name}: edit", lambda s=spec: _check_edit(subject, s))
        if type(gen).tail is not Generator.tail:  # the family resumes after its layers
            yield _run(f"layer {spec.name}: tail", lambda s=spec: _check_tail(subject, s))


def check_generator(gen: Generator, cpu: Generator | None = None) -> list[Check]:
    """Every contract the engine relies on, run against a built generator on its device; `cpu`:
    a copy on the CPU that its outputs must match (for a generator elsewhere)."""
    untouched = state_digest(gen.net.state_dict())
    subject = _Subject(gen)
    device = f"device {gen.device}"
    checks = [
        _run(f"{device}: tensors stay there", lambda: _check_on_device(subject)),
        *([_run(f"{device}: matches the CPU", lambda: _check_matches_cpu(subject, cpu))]
          if cpu is not None else []),
        _run("image", lambda: _check_image(subject)),
        _run("sample numbering", lambda: _check_numbering(subject)),
        _run("deterministic", lambda: _check_deterministic(subject)),
        _run("batch independent", lambda: _check_batch(subject)),
        _run("truncation", lambda: _check_truncation(subject)),
        _run("class labels", lambda: _check_labels(subject)),
        _run("revert restores the images", lambda: _check_overrides(subject)),
        *_layer_checks(subject),
    ]
    same = state_digest(gen.net.state_dict()) == untouched
    checks.append(Check("shared network untouched", same,
                        "" if same else "the checks changed the generator's own weights"))
    return checks


def build(family: str | Plugin, checkpoint: str | Path | None = None) -> Generator:
    """The family (a name, or a plugin not installed) built from `checkpoint`, else from its
    first catalog model."""
    plugin = family if isinstance(family, Plugin) else registry.plugin(family)
    if checkpoint is not None:
        return loader.build_from_file(checkpoint, plugin)
    usable = [m for m in plugin.models if m.unsupported is None]
    if not usable:
        raise RewritingError(
            f"family {plugin.family!r} lists no loadable model: give a checkpoint (--checkpoint)"
        )
    if isinstance(family, str):
        return loader.load_model(usable[0].name)
    return loader.build_from_file(resolve(usable[0].source), plugin, usable[0].name)


def cpu_copy(family: str | Plugin, checkpoint: str | Path | None = None) -> Generator:
    """A private copy of the family's generator (see `build`) on the CPU."""
    plugin = family if isinstance(family, Plugin) else registry.plugin(family)
    if checkpoint is None:
        entry = next(m for m in plugin.models if m.unsupported is None)
        return loader.build_from_file(resolve(entry.source), plugin, entry.name).to(CPU)
    return loader.build_from_file(checkpoint, plugin).to(CPU)


def check_plugin(family: str | Plugin, checkpoint: str | Path | None = None) -> list[Check]:
    """Build the family (see `build`) on the process's device and check every contract (off
    the CPU, also against a copy on the CPU); a failed build is one check."""
    name = family.family if isinstance(family, Plugin) else family
    try:
        gen = build(family, checkpoint)
    except Exception as err:
        return [Check("builds", False, one_line(err))]
    if gen.family != name:
        return [Check("builds", False, f"the plugin built family {gen.family!r}, not {name!r}")]
    cpu = None if gen.device == CPU else cpu_copy(family, checkpoint)
    return [Check("builds", True), *check_generator(gen, cpu)]


def table(checks: list[Check]) -> str:
    """The checks as a plain-text table: contract, ok/FAIL, reason."""
    width = max(len(c.name) for c in checks)
    lines = [f"{'contract':{width}}  result  reason"]
    lines += [f"{c.name:{width}}  {'ok' if c.passed else 'FAIL':6}  {c.reason}".rstrip()
              for c in checks]
    failed = sum(not c.passed for c in checks)
    lines.append(f"{len(checks) - failed} of {len(checks)} contracts hold"
                 + (f", {failed} fail" if failed else ""))
    return "\n".join(lines)


def assert_conforms(family: str | Plugin, checkpoint: str | Path | None = None) -> list[Check]:
    """For a plugin's own tests: fail with the table unless every contract holds."""
    checks = check_plugin(family, checkpoint)
    if not all(c.passed for c in checks):
        name = family.family if isinstance(family, Plugin) else family
        raise AssertionError(f"plugin {name!r} breaks the engine's contracts:\n{table(checks)}")
    return checks
