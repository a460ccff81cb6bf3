"""What the page says: model and layer picker entries, a model that failed, what an edit did."""

from __future__ import annotations

from rewriting.errors import RewritingError, one_line
from rewriting.generator import Generator
from zoo.fetch import availability
from zoo.registry import list_models, model_entry

from .session import HELD_OUT
from .settings import EMBEDDED_MODEL


def model_choices() -> list[tuple[str, str]]:
    """Model picker entries: each loadable catalog model, marked with whether its weights are
    here or need a download (and how large)."""
    return [(f"{m.name} ({'embedded' if m.name == EMBEDDED_MODEL else availability(m)})", m.name)
            for m in list_models() if m.unsupported is None]


def load_failure(name: str, err: Exception) -> str:
    """What a visitor reads when a model does not load: the cause in their terms, without the
    server's paths or commands meant for whoever runs it (an error not the engine's, from a
    hostile repository's files, as just that)."""
    message = one_line(err) if isinstance(err, RewritingError) else "its files could not be used"
    try:
        entry = model_entry(name)
    except RewritingError:
        entry = None
    if entry is not None and availability(entry).startswith("download"):
        return (f"{name} could not be loaded: its weights are not on this server and it cannot "
                "download them now (it may be offline). Models marked embedded, installed or "
                "downloaded load without a download.")
    if "cannot be downloaded" in message or "cannot reach" in message:
        return f"{name} could not be loaded: this server cannot reach the Hugging Face Hub now."
    return f"{name} could not be loaded: {message}"


def layer_choices(generator: Generator) -> list[tuple[str, str]]:
    """Layer picker entries (label, name) with their grids; the recommended layer is marked."""
    out = []
    for name, spec in generator.layers.items():
        (kh, kw), (vh, vw) = spec.key_grid, spec.value_grid
        mark = " (recommended)" if name == generator.default_layer else ""
        out.append((f"{name}: {kh}x{kw} keys -> {vh}x{vw} values{mark}", name))
    return out


def result_text(index: int, metrics: dict, shown: int) -> str:
    """What an executed edit did, for a visitor (Markdown): the verdict first, then figures."""
    return (
        f"**Edit {index} applied at strength {metrics['strength']:g}.** "
        + verdict_text(metrics) + "\n\nWhere the context "
        f"fires, pixels changed by "
        f"**{metrics['change_inside']:.1f}** on average (of 255), elsewhere by "
        f"**{metrics['change_outside']:.1f}**: {metrics['selectivity']:.1f}x more where the rule "
        f"applies. Of the gap to the goal it closed **{metrics['efficacy']:.0%}** on the paste "
        f"sample and **{metrics['generalization']:.0%}** on the {metrics['samples_firing']} "
        f"held-out samples where the rule fires; specificity {metrics['specificity']:.2f}. "
        f"Weight change ||dW||/||W|| = {metrics['delta_norm_ratio']:.2f}, goal residual "
        f"{metrics['residual']:.2f}. " + shown_text(shown)
    )


def verdict_text(metrics: dict) -> str:
    """Whether the edit took, why not (measured), and the advice the tool checked (Markdown)."""
    if "verdict" not in metrics:
        return ""
    lines = [f"**{metrics['verdict']}**"]
    lines += [f"- Likely reason: {reason}." for reason in metrics["reasons"]]
    advice = metrics.get("advice")
    if advice:
        lines.append(f"- Advice: try {advice['label']} ({advice['checked']}): the button below "
                     "redoes the edit that way.")
    elif not metrics["took"]:
        lines.append("- None of the settings the tool tried does better on this request.")
    return "\n".join(lines)


def shown_text(shown: int) -> str:
    """What the before/after picture of an edit shows (Markdown)."""
    return (
        f"Above: the {shown} of {len(HELD_OUT)} held-out samples where the rule fires most "
        "(rows: original, edited, the change x4, both zoomed on where the rule applies)."
    )


def solved_text(index: int, metrics: dict, shown: int) -> str:
    """What an executed edit is before its measures come (Markdown)."""
    return (
        f"**Edit {index} applied at strength {metrics['strength']:g}** (solved in "
        f"{metrics['seconds_execute']:.2f} s). Measuring how far the rule reaches on "
        f"{len(HELD_OUT)} held-out samples… " + shown_text(shown)
    )
