"""The model card (README.md) of an edited model published on the Hub."""

from __future__ import annotations

import re
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from rewriting.editdir import DELTA_FILE, PICTURE_FILE

from .hub import EDIT_FILE, HUB_PREFIX, WEIGHTS_FILE

LIBRARY_NAME = "gan-rewriting"
PAPER = "https://arxiv.org/abs/2007.15646"
#: Licence ids the Hub knows that GAN weights commonly carry; others are published as "other".
HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0",
    "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nc-nd-4.0", "gpl-3.0", "agpl-3.0", "mpl-2.0",
    "openrail", "unknown",
})


def base_repo(base: dict[str, Any]) -> str | None:
    """The Hub repository of a base model, when it comes from the Hub."""
    source = base.get("source") or {}
    return source.get("repo_id") if source.get("type") in ("HubFile", "HubRepo") else None


def _license_fields(license_id: str) -> dict[str, str]:
    if license_id in HUB_LICENSES:
        return {"license": license_id}
    name = re.sub(r"[^a-z0-9.-]+", "-", license_id.lower()).strip("-") or "unknown"
    return {"license": "other", "license_name": name}


def _where(base: dict[str, Any]) -> str:
    """Where the base model comes from, in words."""
    source = base.get("source") or {}
    kind = source.get("type")
    if kind in ("HubFile", "HubRepo"):
        repo = source["repo_id"]
        file = f", file `{source['filename']}`" if kind == "HubFile" else ""
        return f"Hub repository [{repo}](https://huggingface.co/{repo}){file}"
    if kind == "UrlFile":
        return f"<{source['url']}>"
    if kind == "PackageFile":
        return f"the Python package `{source['package']}`"
    return "a local checkpoint"


def _selection(item: dict[str, Any]) -> str:
    mask = item.get("mask")
    region = f"box {list(mask)} (top, left, bottom, right)" if isinstance(mask, list) else (
        "a painted mask"
    )
    return f"sample {item.get('sample')}, {region}"


def _rule(request: dict[str, Any]) -> list[tuple[str, str]]:
    """Table rows that say what the request asked for."""
    if "copy" in request:
        rows = [("Copied", _selection(request["copy"])),
                ("Pasted into", _selection(request["paste"]))]
    else:
        rows = [("Erased", f"{request.get('erase')} channels in {_selection(request['paste'])}")]
    context = request.get("context") or []
    if context:
        samples = ", ".join(str(c.get("sample")) for c in context)
        plural = "s" if len(context) > 1 else ""
        rows.append(("Context", f"{len(context)} selection{plural}, on sample{plural} {samples}"))
    return rows


def _card_data(info: dict[str, Any]) -> ModelCardData:
    """The card's front matter: library, base model, tags, licence."""
    return ModelCardData(
        library_name=LIBRARY_NAME,
        base_model=base_repo(info["base"]),
        tags=["gan", "model-rewriting", info["family"]],
        pipeline_tag="unconditional-image-generation",
        **_license_fields(info["base"]["license"]),
    )


def _edit_rows(edit: dict[str, Any], request: dict[str, Any]) -> list[tuple[str, str]]:
    """Table rows for one edit: layer, update, what the request asked, and its measured effect."""
    strength = edit.get("strength", 1.0)
    rows = [
        ("Layer", f"`{edit['layer']}` (weight `{edit['weight']}`)"),
        ("Update", f"rank {edit['rank']}, method `{edit['method']}`"
         + ("" if strength == 1.0 else f", strength {strength:g}")),
        *_rule(request),
    ]
    metrics = edit.get("metrics") or {}
    if "change_inside" in metrics:
        rows.append((
            f"Effect on {metrics.get('held_out_samples', 'held-out')} held-out samples",
            f"mean absolute pixel change (0-255) {metrics['change_inside']:.1f} where the "
            f"rewritten rule fires, {metrics['change_outside']:.1f} elsewhere",
        ))
    return rows


def _table(rows: list[tuple[str, str]]) -> str:
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def model_card(info: dict[str, Any], repo_id: str) -> ModelCard:
    """The card of a repository whose edit.json is `info` (one edit)."""
    base, edit, request = info["base"], info["edit"], info["request"]
    family = info["family"]
    data = _card_data(info)
    rows = [
        ("Base model", f"`{base['model']}` ({family}), from {_where(base)}"),
        ("Base weights sha256", f"`{base['weights_sha256']}`"),
        *_edit_rows(edit, request),
    ]
    table = _table(rows)
    name = HUB_PREFIX + repo_id
    weights = info["files"].get("weights")
    files = [f"- `{EDIT_FILE}`: the request and its provenance (base model and weights digest, "
             f"tool version {info['tool_version']})",
             f"- `{DELTA_FILE}`: the edit alone, the low-rank update of `{edit['weight']}`",
             f"- `{PICTURE_FILE}`: the picture above"]
    if weights:
        files.insert(0, f"- `{WEIGHTS_FILE}`: the full edited weights ({family} layout)")
    delta_note = "" if weights else (
        f"\nThis repository holds only the edit: loading it fetches the base model "
        f"`{base['model']}` and applies `{DELTA_FILE}` to it.\n"
    )
    effect = "draw what was copied" if "copy" in request else "leave out what was erased"
    body = f"""
# {repo_id.split("/")[-1]}

`{base['model']}` with one rule rewritten: a rank-{edit['rank']} change to layer
`{edit['layer']}` makes the generator {effect} wherever it meets the context it was shown.
Made with {LIBRARY_NAME}, an implementation of Bau et al.,
[Rewriting a Deep Generative Model]({PAPER}) (ECCV 2020).

![Held-out samples before the edit, after it, and the change magnified four times]({PICTURE_FILE})

Rows: held-out samples of the original model, the same samples after the edit, and the
difference magnified four times.

## What was edited

{table}

## Use it

With gan-rewriting installed:

```python
from zoo.hub import load_any
generator = load_any("{name}")
```

or render samples from the command line:
`python -m rewriting sample --model {name} --samples 0-15 --out grid.png`.
{delta_note}
## Files

{chr(10).join(files)}

## License

The edited weights derive from `{base['model']}` and carry its license: `{base['license']}`.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def _rule_title(index: int, edit: dict[str, Any]) -> str:
    request = edit["request"]
    kind = "Copy and paste" if "copy" in request else "Erase"
    return f"{index}. {kind} at layer `{edit['layer']}` (rank {edit['rank']})"


def stack_card(info: dict[str, Any], repo_id: str) -> ModelCard:
    """The card of a repository whose edit.json is `info` (a stack of edits, in order)."""
    base, edits, family = info["base"], info["edits"], info["family"]
    name = HUB_PREFIX + repo_id
    rules = "\n\n".join(
        f"### {_rule_title(i + 1, edit)}\n\n{_table(_edit_rows(edit, edit['request']))}\n\n"
        f"![Rule {i + 1}: held-out samples before and after it]({edit['picture']})"
        for i, edit in enumerate(edits)
    )
    weights, picture = info["files"].get("weights"), info["files"]["picture"]
    files = [f"- `{EDIT_FILE}`: every request, in order, and the provenance (base model and "
             f"weights digests, tool version {info['tool_version']})",
             f"- `{picture}`: the whole stack, before and after",
             "- `edits/N/delta.safetensors`, `edits/N/before_after.png`: rule N alone, its "
             "low-rank update and its picture"]
    if weights:
        files[:0] = [f"- `{WEIGHTS_FILE}`: the full edited weights ({family} layout)",
                     f"- `{info['files']['base_weights']}`: the base values of the edited "
                     "tensors, so that loading restores every rule as a revertible edit"]
    delta_note = "" if weights else (
        f"\nThis repository holds only the edits: loading it fetches the base model "
        f"`{base['model']}` and applies them in order.\n"
    )
    body = f"""
# {repo_id.split("/")[-1]}

`{base['model']}` with {len(edits)} rules rewritten, one on top of the other. Made with
{LIBRARY_NAME}, an implementation of Bau et al.,
[Rewriting a Deep Generative Model]({PAPER}) (ECCV 2020).

![Held-out samples before the edits, after all of them, and the change x4]({picture})

Rows: held-out samples of the original model, the same samples with every rule applied, and
the difference magnified four times.

Base model: `{base['model']}` ({family}), from {_where(base)}; weights sha256
`{base['weights_sha256']}`.

## Rules, in the order they are applied

Each picture shows held-out samples before the rule (with the rules above it applied), after
it, and the change magnified four times.

{rules}

## Use it

With gan-rewriting installed, render the edited model:
`python -m rewriting sample --model {name} --samples 0-15 --out grid.png`
(add `--revert 1` to leave out rule 1).

Each rule stays a separate edit that can be reverted:

```python
from zoo.hub import load_hub_stack
stack = load_hub_stack("{name}")
stack.revert(0)  # without rule 1; the others stay
weights = stack.weights()  # render with stack.generator.synthesize(z, None, weights)
```

In the app, type `{name}` as the model: the rules appear in its list of edits, and any one
of them can be reverted.
{delta_note}
## Files

{chr(10).join(files)}

## License

The edited weights derive from `{base['model']}` and carry its license: `{base['license']}`.
"""
    return ModelCard(f"---\n{_card_data(info).to_yaml()}\n---\n{body}")
