"""Which layer to rewrite: solve the request at every rewritable layer and compare the rule change.

The suggestion is the layer with the best generalisation among those whose specificity reaches
SPECIFICITY_TARGET and whose context fires on at least MIN_FIRING held-out samples (so that
generalisation is measured at all); the most specific such layer when none is specific
enough. Key statistics come from the
per-layer cache, so asking again costs only the solves and the renders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .delta import EditStack
from .efficacy import RuleProbe
from .errors import RewritingError
from .generator import Generator
from .request import EditRequest
from .rewrite import execute
from .stats import key_stats

#: Specificity a layer must reach to be suggested (1 = nothing changes outside the context):
#: a little below the mean of rank one at its default strength (0.87 in docs/evaluation).
SPECIFICITY_TARGET = 0.85
#: Held-out samples the context must fire on for a layer's generalisation to count.
MIN_FIRING = 8


@dataclass
class LayerSuggestion:
    """The chosen layer and one row of measures per rewritable layer."""

    layer: str
    rows: list[dict]


def suggest_layer(
    generator: Generator,
    request: EditRequest,
    numbers: Sequence[int],
    stack: EditStack | None = None,
    stats_samples: int = 1000,
    log: Callable[[str], None] | None = None,
) -> LayerSuggestion:
    """Solve `request` at each layer; rows hold efficacy, generalisation, specificity or error."""
    rows = []
    truncation = generator.check_truncation(request.truncation)
    for name, spec in generator.layers.items():
        if log:
            log(f"trying layer {name}")
        stats = key_stats(generator, spec, truncation, samples=stats_samples)
        variant = replace(request, layer=name)
        try:
            result = execute(generator, variant, stack, stats)
        except RewritingError as err:
            rows.append({"layer": name, "error": str(err)})
            continue
        after = EditStack(generator, [*(stack.deltas if stack else []), result.delta]).weights()
        measured = RuleProbe(generator, result.problem, numbers).measure(after)
        rows.append({
            "layer": name,
            "delta_norm_ratio": result.solution.delta_norm_ratio,
            **{k: measured[k] for k in ("efficacy", "generalization", "specificity",
                                         "selectivity", "samples_firing")},
        })
    usable = [r for r in rows if "error" not in r and r["samples_firing"] >= MIN_FIRING]
    if not usable:
        raise RewritingError(
            "no layer of this model solves the request with its context firing on "
            f"{MIN_FIRING} or more of {len(numbers)} held-out samples"
        )
    specific = [r for r in usable if r["specificity"] >= SPECIFICITY_TARGET]
    best = (max(specific, key=lambda r: r["generalization"]) if specific
            else max(usable, key=lambda r: r["specificity"]))
    return LayerSuggestion(best["layer"], rows)


def layer_table(suggestion: LayerSuggestion) -> str:
    """The rows as a fixed-width text table, the suggested layer marked with '*'."""
    lines = [f"  {'layer':10} {'efficacy':>9} {'general.':>9} {'specif.':>8} {'select.':>8} "
             f"{'|dW|/|W0|':>10} {'firing':>7}"]
    for row in suggestion.rows:
        mark = "*" if row["layer"] == suggestion.layer else " "
        if "error" in row:
            lines.append(f"{mark} {row['layer']:10} {row['error']}")
            continue
        lines.append(
            f"{mark} {row['layer']:10} {row['efficacy']:9.3f} {row['generalization']:9.3f} "
            f"{row['specificity']:8.3f} {row['selectivity']:8.2f} {row['delta_norm_ratio']:10.3f} "
            f"{row['samples_firing']:7d}"
        )
    return "\n".join(lines)
