"""`push` against a loopback Hub with the real client: round trips, the card, and failures."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
import yaml
from hub_server import HubServer, make_edit, use_hub
from huggingface_hub import ModelCard, constants
from safetensors.torch import load, save

import rewriting.stats as stats_module
from rewriting.delta import Delta
from rewriting.errors import RewritingError
from rewriting.stats import cached_key_stats, compute_key_stats, key_stats
from rewriting_cli.common import open_edits
from rewriting_cli.main import main
from zoo.card import model_card
from zoo.hub import load_any, load_hub_stack

TOKEN = "hf_SecretTokenThatMustNeverShow0123"
PUBLISHED = {".gitattributes", "README.md", "before_after.png", "delta.safetensors", "edit.json"}
EXAMPLES = Path(__file__).parents[2] / "examples"
#: Requests of the published stack after the first edit (eye to mouth): an erase, then a paste.
STACKED = [EXAMPLES / "evaluation" / "6-erase-glasses.json", EXAMPLES / "open-mouth.json"]


@pytest.fixture(scope="module")
def edit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_edit(tmp_path_factory.mktemp("edit") / "eyes")


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    with HubServer({TOKEN: "alice"}) as server:
        use_hub(monkeypatch, server.url, tmp_path / "home")
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield server


def push(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """Run `push`; its exit status and everything it printed (which must not hold the token)."""
    status = main(["push", *args])
    out = capsys.readouterr()
    text = out.out + out.err
    assert TOKEN not in text
    return status, text


def render_png(capsys: pytest.CaptureFixture, path: Path, *args: str) -> bytes:
    assert main(["sample", "--samples", "0-15", "--out", str(path), *args]) == 0
    capsys.readouterr()
    return path.read_bytes()


def no_token_anywhere(hub: HubServer, *folders: Path) -> None:
    for repo in hub.repos.values():
        for _, files in repo.commits:
            assert all(TOKEN.encode() not in data for data in files.values())
    for folder in folders:
        for path in folder.rglob("*"):
            assert not path.is_file() or TOKEN.encode() not in path.read_bytes()


@pytest.mark.parametrize("delta_only", [False, True], ids=["full", "delta-only"])
def test_round_trip_renders_the_edited_samples_bit_identically(
    hub, edit_dir, capsys, monkeypatch, tmp_path, delta_only
):
    flags = ["--delta-only"] if delta_only else []
    status, text = push(capsys, str(edit_dir), "--repo", "alice/eyes", *flags)
    assert status == 0, text
    assert "hub:alice/eyes" in text
    files = hub.repo_files("alice/eyes")
    assert set(files) == PUBLISHED | (set() if delta_only else {"model.safetensors"})
    assert len(hub.repos["alice/eyes"].commits) == 2  # the repository's creation, then one commit
    assert [r for r in hub.requests if r[1].endswith("/commit/main")] == [
        ("POST", "/api/models/alice/eyes/commit/main")
    ]
    local = render_png(
        capsys, tmp_path / "local.png", "--model", "dcgan-digiface",
        "--edit", str(edit_dir / "delta.safetensors"),
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "fresh" / "hub"))
    published = render_png(capsys, tmp_path / "hub.png", "--model", "hub:alice/eyes")
    assert published == local
    assert (tmp_path / "fresh" / "hub" / "models--alice--eyes").is_dir()

    generator = load_any("hub:alice/eyes")
    base = load_any("dcgan-digiface")
    stack = open_edits(base, [str(edit_dir / "delta.safetensors")])
    z = base.latents(range(8))
    assert torch.equal(generator.synthesize(z), base.synthesize(z, None, stack.weights()))
    no_token_anywhere(hub, tmp_path)


def test_card_front_matter_parses_and_reads_well(hub, edit_dir, capsys):
    assert push(capsys, str(edit_dir), "--repo", "alice/card", "--private")[0] == 0
    assert hub.repos["alice/card"].private
    text = hub.repo_files("alice/card")["README.md"].decode()
    meta = yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL).group(1))
    assert meta["library_name"] == "gan-rewriting"
    assert meta["license"] == "mit"
    assert meta["tags"] == ["gan", "model-rewriting", "dcgan"]
    assert meta["pipeline_tag"] == "unconditional-image-generation"
    assert "base_model" not in meta  # the DCGAN comes from PyPI, not from a Hub repository
    assert "![" in text and "(before_after.png)" in text
    assert 'load_any("hub:alice/card")' in text
    assert "`main.6`" in text and "`dcgan-digiface`" in text


def test_card_of_a_hub_base_names_it_and_maps_its_license():
    info = {
        "family": "stylegan2", "tool_version": "0.1.0",
        "files": {"weights": "model.safetensors"},
        "base": {
            "model": "stylegan2-church-hub", "weights_sha256": "ab" * 32,
            "license": "nvidia-source-code-license-nc",
            "source": {"type": "HubFile", "repo_id": "aaronb/StyleGAN2",
                       "filename": "stylegan2-church-config-f.pt", "revision": "main",
                       "sha256": None},
        },
        "edit": {"layer": "layer8", "weight": "convs.5.conv.weight", "rank": 1,
                 "method": "rank", "metrics": {}},
        "request": {"erase": 30, "paste": {"sample": 3, "mask": "data:image/png;base64,AA"}},
    }
    card = model_card(info, "bob/church-no-towers")
    assert "leave out what was erased" in card.text and "a painted mask" in card.text
    data = ModelCard(str(card)).data
    assert data.base_model == "aaronb/StyleGAN2"
    assert data.license == "other"
    assert data.license_name == "nvidia-source-code-license-nc"
    assert data.tags == ["gan", "model-rewriting", "stylegan2"]


def test_push_without_a_token_explains_and_sends_nothing(hub, edit_dir, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    status, text = push(capsys, str(edit_dir), "--repo", "alice/eyes")
    assert status == 2
    assert "HF_TOKEN" in text and "token" in text
    assert hub.requests == []


@pytest.mark.parametrize(("repo", "message"), [
    ("", "type the repository to publish to, as OWNER/NAME"),
    ("  ", "type the repository to publish to, as OWNER/NAME"),
    ("alice/eyes@main", "bad repository 'alice/eyes@main': write OWNER/NAME, without a revision"),
    ("alice", "bad repository 'alice': write OWNER/NAME"),
])
def test_push_to_a_bad_repository_name_says_so_and_sends_nothing(hub, edit_dir, capsys, repo,
                                                                 message):
    status, text = push(capsys, str(edit_dir), "--repo", repo)
    assert status == 2 and message in text and "Hub model" not in text
    assert hub.requests == []


def test_push_with_a_rejected_token_says_401(hub, edit_dir, capsys):
    hub.reject_tokens = True
    status, text = push(capsys, str(edit_dir), "--repo", "alice/eyes")
    assert status == 2
    assert "401" in text and "HF_TOKEN" in text
    assert "alice/eyes" not in hub.repos


def test_push_to_an_existing_repo_refuses_unless_exist_ok(hub, edit_dir, capsys):
    hub.add_repo("alice/taken", {"README.md": b"mine\n"})
    status, text = push(capsys, str(edit_dir), "--repo", "alice/taken")
    assert status == 2
    assert "already exists" in text and "--exist-ok" in text
    assert hub.repo_files("alice/taken") == {"README.md": b"mine\n"}

    status, text = push(capsys, str(edit_dir), "--repo", "alice/taken", "--exist-ok")
    assert status == 0, text
    assert "model.safetensors" in hub.repo_files("alice/taken")


def test_server_failure_mid_commit_leaves_no_partial_content(hub, edit_dir, capsys):
    hub.fail_commit = True
    status, text = push(capsys, str(edit_dir), "--repo", "alice/eyes")
    assert status == 2
    assert "500" in text and "none of these files" in text and "--exist-ok" in text
    assert set(hub.repo_files("alice/eyes")) == {".gitattributes"}

    hub.fail_commit = False
    status, text = push(capsys, str(edit_dir), "--repo", "alice/eyes", "--exist-ok")
    assert status == 0, text
    assert set(hub.repo_files("alice/eyes")) == PUBLISHED | {"model.safetensors"}


def test_push_checks_its_inputs_before_any_request(hub, tmp_path, capsys):
    status, text = push(capsys, str(tmp_path), "--repo", "alice/eyes")
    assert status == 2 and "has no delta.safetensors" in text
    status, text = push(capsys, str(tmp_path), "--repo", "not a repo")
    assert status == 2 and "OWNER/NAME" in text
    assert hub.requests == []


def test_an_edit_stacked_on_earlier_ones_is_not_published_alone(hub, edit_dir, tmp_path, capsys):
    from rewriting_cli.main import main

    example = Path(__file__).parents[2] / "examples" / "eye-to-mouth.json"
    stacked = tmp_path / "stacked"
    assert main(["edit", str(example), "--out", str(stacked), "--stats-samples", "100",
                 "--held-out", "8", "--show", "4", "--edit",
                 str(edit_dir / "delta.safetensors")]) == 0
    code, err = push(capsys, str(stacked), "--repo", "alice/stacked")
    assert code == 2 and "on top of 1 earlier edit" in err
    assert "alice/stacked" not in hub.repos


@pytest.fixture(scope="module")
def stack_dirs(tmp_path_factory: pytest.TempPathFactory, edit_dir: Path) -> list[Path]:
    """Three edits made one on top of the other: copy/paste, erase, copy/paste."""
    folders = [edit_dir]
    for request in STACKED:
        out = tmp_path_factory.mktemp("stack") / request.stem
        args = ["edit", str(request), "--out", str(out), "--stats-samples", "100",
                "--held-out", "8", "--show", "4", "--scale", "1"]
        for folder in folders:
            args += ["--edit", str(folder / "delta.safetensors")]
        assert main(args) == 0
        folders.append(out)
    return folders


@pytest.mark.parametrize("delta_only", [False, True], ids=["full", "delta-only"])
def test_a_stack_publishes_loads_back_and_each_edit_reverts(
    hub, stack_dirs, capsys, monkeypatch, tmp_path, delta_only
):
    flags = ["--delta-only"] if delta_only else []
    status, text = push(capsys, *map(str, stack_dirs), "--repo", "alice/stack", *flags)
    assert status == 0, text
    assert "a stack of 3 edits" in text and "hub:alice/stack" in text
    files = hub.repo_files("alice/stack")
    per_edit = {f"edits/{n}/{name}" for n in (1, 2, 3)
                for name in ("delta.safetensors", "before_after.png")}
    full = set() if delta_only else {"model.safetensors", "base_weights.safetensors"}
    assert set(files) == {".gitattributes", "README.md", "before_after.png", "edit.json"} | (
        per_edit | full)
    assert len(hub.repos["alice/stack"].commits) == 2  # the creation, then one commit

    paths = [str(folder / "delta.safetensors") for folder in stack_dirs]
    edits = [arg for path in paths for arg in ("--edit", path)]
    local = render_png(capsys, tmp_path / "local.png", "--model", "dcgan-digiface", *edits)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "fresh" / "hub"))
    assert render_png(capsys, tmp_path / "hub.png", "--model", "hub:alice/stack") == local
    without_erase = render_png(capsys, tmp_path / "without.png", "--model", "hub:alice/stack",
                               "--revert", "2")
    assert without_erase == render_png(capsys, tmp_path / "local-2.png", "--model",
                                       "dcgan-digiface", "--edit", paths[0], "--edit", paths[2])
    assert without_erase != local
    assert main(["sample", "--model", "hub:alice/stack", "--revert", "4", "--out",
                 str(tmp_path / "none.png")]) == 2
    assert "holds 3 revertible edit(s)" in capsys.readouterr().err
    assert not (tmp_path / "none.png").exists()

    restored = load_hub_stack("hub:alice/stack")
    made = [Delta.load(path) for path in paths]
    assert [d.request for d in restored.deltas] == [d.request for d in made]
    assert [d.request.get("erase") is not None for d in restored.deltas] == [False, True, False]
    assert [(d.layer, d.strength) for d in restored.deltas] == [(d.layer, d.strength)
                                                                 for d in made]
    base = load_any("dcgan-digiface")
    assert (restored.generator is base) == delta_only  # full weights rebuild the base
    z = base.latents([0, 3, 1000, 1001])
    mine = open_edits(base, paths)
    assert torch.equal(restored.generator.synthesize(z, None, restored.weights()),
                       base.synthesize(z, None, mine.weights()))
    for index in range(3):
        theirs, ours = load_hub_stack("hub:alice/stack"), open_edits(base, paths)
        theirs.revert(index)
        ours.revert(index)
        without = restored.generator.synthesize(z, None, theirs.weights())
        assert torch.equal(without, base.synthesize(z, None, ours.weights())), index
        assert not torch.equal(without, base.synthesize(z, None, mine.weights())), index
    no_token_anywhere(hub, tmp_path)


def test_the_stack_card_lists_each_rule_with_its_picture(hub, stack_dirs, capsys, tmp_path):
    assert push(capsys, *map(str, stack_dirs), "--repo", "alice/rules")[0] == 0
    files = hub.repo_files("alice/rules")
    card = files["README.md"].decode()
    titles = re.findall(r"^### (\d)\. (\S+)", card, re.MULTILINE)
    assert titles == [("1", "Copy"), ("2", "Erase"), ("3", "Copy")]
    for number in (1, 2, 3):
        assert f"(edits/{number}/before_after.png)" in card
        assert files[f"edits/{number}/before_after.png"] == (
            stack_dirs[number - 1] / "before_after.png").read_bytes()
    assert "(before_after.png)" in card and "load_hub_stack" in card
    meta = yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", card, re.DOTALL).group(1))
    assert meta["tags"] == ["gan", "model-rewriting", "dcgan"] and meta["license"] == "mit"
    for name in ("README.md", "before_after.png", "edits/2/before_after.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(files[name])


def test_a_stack_in_the_wrong_order_is_refused_before_any_request(hub, stack_dirs, capsys):
    status, text = push(capsys, str(stack_dirs[1]), str(stack_dirs[0]), "--repo", "alice/x")
    assert status == 2 and "in the order they were made" in text
    status, text = push(capsys, str(stack_dirs[0]), str(stack_dirs[2]), "--repo", "alice/x")
    assert status == 2 and "on top of 2 earlier edit(s)" in text
    assert hub.requests == []


def test_a_damaged_base_of_a_published_stack_is_refused(hub, stack_dirs, capsys):
    assert push(capsys, *map(str, stack_dirs), "--repo", "alice/damaged")[0] == 0
    files = hub.repo_files("alice/damaged")
    originals = load(files["base_weights.safetensors"])
    hub.add_repo("mallory/damaged", {**files, "base_weights.safetensors": save(
        {name: tensor * 1.01 for name, tensor in originals.items()})})
    with pytest.raises(RewritingError, match="the base weights do not match the digest"):
        load_hub_stack("hub:mallory/damaged")
    hub.add_repo("mallory/other", {**files, "base_weights.safetensors": save(
        {"main.9.weight": originals["main.6.weight"]})})
    with pytest.raises(RewritingError, match="not the tensors its edits change"):
        load_hub_stack("hub:mallory/other")
    assert len(load_hub_stack("hub:alice/damaged").deltas) == 3


# push --with-stats: statistics published beside a model, adopted on load when their key
# matches it, ignored with a note otherwise.
STATS = "stats/main.6.safetensors"


def visitor(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """A fresh Hub download cache and statistics cache, as on another machine."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder / "hub"))
    monkeypatch.setenv("REWRITING_CACHE", str(folder / "rewriting"))


def with_metadata(data: bytes, **changes: str) -> bytes:
    """A safetensors file's bytes with some metadata entries changed (tensors kept)."""
    size = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + size])["__metadata__"]
    return save(load(data), metadata={**meta, **changes})


@pytest.mark.slow
def test_published_stats_are_adopted_when_their_key_matches(
    hub, edit_dir, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("REWRITING_CACHE", str(tmp_path / "pusher"))
    assert main(["push", str(edit_dir), "--repo", "alice/stats", "--with-stats"]) == 0
    assert TOKEN not in "".join(capsys.readouterr())
    files = hub.repo_files("alice/stats")
    assert json.loads(files["edit.json"])["files"]["stats"] == [STATS]
    published = load(files[STATS])

    visitor(monkeypatch, tmp_path / "visitor")
    generator = load_any("hub:alice/stats")
    spec, truncation = generator.layer("main.6"), generator.check_truncation(None)
    cached = cached_key_stats(generator, spec, truncation)
    assert cached is not None
    assert torch.equal(cached.second_moment, published["second_moment"])
    # They are what this machine would compute for the loaded model, bit for bit.
    assert torch.equal(cached.second_moment,
                       compute_key_stats(generator, spec, truncation).second_moment)
    monkeypatch.setattr(stats_module, "compute_key_stats", lambda *a, **k: pytest.fail("computed"))
    assert torch.equal(key_stats(generator, spec, truncation).key_sample, cached.key_sample)

    # The same files under another repository name: the weights digest still matches.
    hub.add_repo("alice/copy", files)
    visitor(monkeypatch, tmp_path / "copy")
    copy = load_any("hub:alice/copy")
    assert cached_key_stats(copy, copy.layer("main.6"), truncation) is not None


CHANGES = [{"weights_sha256": "f" * 64}, {"samples": "999"}, {"layer": "main.3"}, {"seed": "x"}]


@pytest.mark.slow
def test_published_stats_that_do_not_fit_are_ignored_with_a_note(
    hub, edit_dir, monkeypatch, tmp_path, caplog
):
    monkeypatch.setenv("REWRITING_CACHE", str(tmp_path / "pusher"))
    assert main(["push", str(edit_dir), "--repo", "alice/stats", "--with-stats"]) == 0
    files = hub.repo_files("alice/stats")
    for number, change in enumerate(CHANGES):
        hub.add_repo(f"alice/bad{number}", {**files, STATS: with_metadata(files[STATS], **change)})
        visitor(monkeypatch, tmp_path / f"visitor{number}")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="zoo.hub_stats"):
            generator = load_any(f"hub:alice/bad{number}")
        assert f"ignoring its published statistics {STATS}" in caplog.text, change
        cache = tmp_path / f"visitor{number}" / "rewriting"
        assert not cache.exists() or not list(cache.rglob("*.safetensors")), change
        assert generator.name == f"hub:alice/bad{number}"  # the model itself loads as usual
