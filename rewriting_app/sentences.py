"""What the page says, in the words of someone who has not read the paper: the model and layer
pickers, a model that failed, what an edit did (its exact figures folded away), and engine
messages without the server's paths or commands."""

from __future__ import annotations

import re

from rewriting.errors import RewritingError, one_line
from rewriting.generator import Generator
from zoo.fetch import availability
from zoo.registry import ModelEntry, list_models, model_entry

from .comparison_picture import COLUMNS
from .session import HELD_OUT

#: A model whose weights are here: it loads without a download.
READY = "ready"
#: What a layer draws, by its grid's cells per image pixel (at most).
SCALES = ((1 / 16, "overall layout"), (1 / 8, "coarse shapes"), (1 / 4, "object parts"))
#: What the result says of an edit scaled to nothing.
NOTHING_AT_ZERO = "At strength 0 this edit changes nothing; raise the strength to apply it."
#: Engine words a visitor reads otherwise: the solve's residual (among the exact figures) and
#: the samples the edit is measured on.
PLAIN = ((re.compile(r"\s*\(goal residual [^()]*\)"), ""), (re.compile(r"held-out"), "other"))


def model_choices() -> list[tuple[str, str]]:
    """Model picker entries (label, name): the loadable catalog models, those that load now
    first, each marked "ready" or with the download it needs."""
    marked = [(readiness(m), m.name) for m in list_models() if m.unsupported is None]
    return [(f"{name} ({mark})", name)
            for mark, name in sorted(marked, key=lambda pair: pair[0] != READY)]


def readiness(entry: ModelEntry) -> str:
    """Whether a model loads now ("ready": embedded, installed or downloaded), in plain words."""
    found = availability(entry)
    if found in ("installed", "downloaded"):
        return READY
    if found == "not installed":
        return "not on this server"
    return (f"needs a download of {entry.size_bytes / 2**20:.0f} MB" if entry.size_bytes
            else "needs a download")


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
                f"download them now (it may be offline). Models marked {READY} load without a "
                "download.")
    if "cannot be downloaded" in message or "cannot reach" in message:
        return f"{name} could not be loaded: this server cannot reach the Hugging Face Hub now."
    return f"{name} could not be loaded: {for_visitors(message)}"


def layer_choices(generator: Generator) -> list[tuple[str, str]]:
    """Layer picker entries (label, name): each layer's grid and what it draws in words, such
    as "main.6 · coarse shapes (8x8 grid) · recommended"."""
    out = []
    for name, spec in generator.layers.items():
        rows, columns = spec.key_grid
        words = [name, f"{drawn(spec.key_grid, generator.image_size)} ({rows}x{columns} grid)"]
        out.append((" · ".join(words + ["recommended"] * (name == generator.default_layer)),
                    name))
    return out


def drawn(grid: tuple[int, int], image_size: tuple[int, int]) -> str:
    """What a layer with this key grid draws, by its cells per image pixel: the fewer, the
    coarser (overall layout, coarse shapes, object parts, fine detail)."""
    ratio = max(cells / side for cells, side in zip(grid, image_size, strict=True))
    return next((words for limit, words in SCALES if ratio <= limit), "fine detail")


def result_text(index: int, metrics: dict, shown: int) -> str:
    """What a measured edit did (Markdown): the verdict, three plain sentences (how far the
    rule reached, on the pasted sample, how much else changed), then the exact figures."""
    if metrics["strength"] == 0:
        return _zero(index, shown)
    return "\n\n".join(filter(None, [
        f"{_headline(index, metrics)} {verdict_text(metrics)}", reach_text(metrics),
        shown_text(shown), exact_figures(metrics),
    ]))


def _headline(index: int, metrics: dict) -> str:
    return f"**Edit {index} applied at strength {metrics['strength']:g}.**"


def _zero(index: int, shown: int) -> str:
    """The result of an edit at strength 0: nothing changed, and no figure says otherwise."""
    return "\n\n".join(filter(None, [f"**Edit {index} is at strength 0.** {NOTHING_AT_ZERO}",
                                     shown_text(shown)]))


def verdict_text(metrics: dict) -> str:
    """Whether the edit took, why not (measured), and the advice the tool checked (Markdown)."""
    if "verdict" not in metrics:
        return ""
    lines = [f"**{headline_of(metrics['verdict'])}**"]
    lines += [f"- Likely reason: {plain(reason)}." for reason in metrics["reasons"]]
    advice = metrics.get("advice")
    if advice:
        lines.append(f"- Advice: try {advice['label']} ({plain(advice['checked'])}): the "
                     "button below redoes the edit that way.")
    elif not metrics["took"]:
        lines.append("- None of the settings the tool tried does better on this request.")
    return "\n".join(lines)


def headline_of(verdict: str) -> str:
    """A verdict without the figures after its colon (the plain sentences below give them,
    each beside its random floor)."""
    return verdict.split(": ", 1)[0].rstrip(".") + "."


def plain(sentence: str) -> str:
    """An engine sentence without the solve's residual and with "other samples" for the
    held-out ones."""
    for pattern, words in PLAIN:
        sentence = pattern.sub(words, sentence)
    return sentence


def percent(value: float) -> str:
    """A share in whole percent (never "-0%")."""
    return f"{round(100 * value) + 0:.0f}%"


def reach_text(metrics: dict) -> str:
    """How far the rule reached, on the pasted sample, and how much else changed, each beside
    what a random change of the same size does (Markdown list)."""
    floor, firing = metrics["random_floor"], metrics["samples_firing"]
    if firing:
        reached = (f"on the {firing} of {metrics['held_out_samples']} other samples where it "
                   f"applies, the pictures moved {percent(metrics['generalization'])} of the "
                   "way to what the rule asks for (a random change of the same size: "
                   f"{percent(floor['generalization'])}).")
    else:
        reached = f"it applies on none of the {metrics['held_out_samples']} other samples."
    return "\n".join([
        f"- **How far the rule reached:** {reached}",
        f"- **On the pasted sample:** {percent(metrics['efficacy'])} of the way to your paste "
        f"(random change: {percent(floor['efficacy'])}).",
        "- **How much else changed:** away from where the rule applies, the pictures changed "
        f"{percent(1 - metrics['specificity'])} as much as two different samples differ "
        f"(random change: {percent(1 - floor['specificity'])}).",
    ])


def exact_figures(metrics: dict) -> str:
    """The measured figures, each beside its random floor, folded under "Exact figures"."""
    floor, strength = metrics["random_floor"], metrics["strength"]
    lines = [
        f"- efficacy (share of the gap to the goal closed on the paste sample): "
        f"{metrics['efficacy']:.2f} · random {floor['efficacy']:.2f}",
        f"- generalization (on the {metrics['samples_firing']} of "
        f"{metrics['held_out_samples']} held-out samples where the context key fires): "
        f"{metrics['generalization']:.2f} · random {floor['generalization']:.2f}",
        f"- specificity: {metrics['specificity']:.2f} · random {floor['specificity']:.2f}",
        f"- artefacts (high-frequency change away from the rule): {metrics['artefacts']:.2f} · "
        f"random {floor['artefacts']:.2f}",
        f"- pixel change where the rule fires / elsewhere (of 255): "
        f"{metrics['change_inside']:.1f} / {metrics['change_outside']:.1f} "
        f"({metrics['selectivity']:.1f}x)",
        f"- ||dW||/||W|| at strength {strength:g}: "
        f"{metrics['delta_norm_ratio_at_strength']:.3f} · random the same, by construction",
        f"- goal residual at strength {strength:g}: {metrics['residual_at_strength']:.2f} "
        "(0: the layer meets the goal, 1: as far from it as before the edit)",
    ]
    return ("<details><summary>Exact figures</summary>\n\n"
            "Each beside a random update of the same layer, rank and size.\n\n"
            + "\n".join(lines) + "\n\n</details>")


def shown_text(shown: int) -> str:
    """What the before/after picture of an edit shows, when it shows samples (Markdown)."""
    if not shown:
        return ""
    return (
        f"The picture: {min(shown, COLUMNS)} of the {len(HELD_OUT)} other samples where the "
        "rule applies most, one a column. Rows: the original model; the model before this "
        "edit (when earlier edits change it); after this edit; what this edit changed, "
        "brightened four times."
    )


def solved_text(index: int, metrics: dict, shown: int) -> str:
    """What an executed edit is before its measures come (Markdown)."""
    if metrics["strength"] == 0:
        return _zero(index, shown)
    return "\n\n".join(filter(None, [
        f"{_headline(index, metrics)} Measuring how far the rule reaches on "
        f"{len(HELD_OUT)} other samples…", shown_text(shown),
    ]))


#: An absolute path (or one from the home folder) of two parts or more, not inside a URL.
PATH = re.compile(r"(?<![\w.:/~-])~?(?:/[\w.@+-]+){2,}/?")
#: A command-line hint: a command in backquotes, an option, an environment variable, a rerun.
COMMAND = re.compile(r"`(?:python|pip|rewriting|hf)\b[^`]*`|(?<!\S)--[a-z][\w-]*"
                     r"|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|\bthe same command\b")


def for_visitors(message: str) -> str:
    """An engine message for a web visitor: each absolute path cut to its last part, and each
    parenthesis or later clause (after ";" or ": ") that gives a command-line hint left out."""
    message = PATH.sub(lambda m: m.group().rstrip("/").rsplit("/", 1)[-1], message)
    message = re.sub(r"\s*\([^()]*\)", lambda m: "" if COMMAND.search(m.group()) else m.group(),
                     message)
    first, *rest = _clauses(message)
    kept = [COMMAND.sub("", first), *(c for c in rest if not COMMAND.search(c))]
    return " ".join("".join(kept).split())


def _clauses(message: str) -> list[str]:
    """The message cut before each ";" and ": " outside parentheses (each clause keeps the
    separator before it)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(message):
        depth += (char == "(") - (char == ")")
        if depth == 0 and i > start and (char == ";" or message[i:i + 2] == ": "):
            parts.append(message[start:i])
            start = i
    return [*parts, message[start:]]
