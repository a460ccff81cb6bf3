"""The Hub's NVIDIA collections in the catalog, and `models` reporting what is cached, offline."""

from __future__ import annotations

import json

import pytest

from plugins.base import HubFile
from rewriting.errors import RewritingError
from rewriting_cli.main import main
from zoo.loader import load_model
from zoo.registry import list_models


def test_the_hub_collections_are_listed_with_their_files_and_license():
    files = {m.source.repo_id + "/" + m.source.filename: m for m in list_models()
             if isinstance(m.source, HubFile)}
    for name in ("stylegan2_lions_512_pytorch.pkl", "stylegan2-ffhq-512x512.pkl",
                 "stylegan2-lhq-256x256.pkl", "stylegan2-car-config-f.pkl"):
        assert f"DragGan/DragGan-Models/{name}" in files
    assert files["justinpinkney/stylegan3-t-lhq-256/lhq-256-stylegan3-t-25Mimg.pkl"].family == (
        "stylegan3")
    for name in ("ada/metfaces.pt", "self_distill/parrots_512.pt", "human/v2_1024.pt"):
        assert files[f"aaronb/StyleGAN2/{name}"].family == "stylegan2"
    new = [m for key, m in files.items() if not key.startswith("aaronb/StyleGAN2/stylegan2-")]
    assert len(new) == 26
    assert {m.license for m in new} == {"nvidia-source-code-license-nc"}
    assert all(m.resolution in (256, 512, 1024) for m in new)
    refused = {m.name for m in new if m.unsupported}
    assert refused == {"draggan-car-512", "draggan-cat-256", "draggan-human-512",
                       "stylegan2-human-512-hub", "stylegan2-human-1024-hub"}


@pytest.mark.parametrize("name,reason", [("draggan-car-512", "TensorFlow-era"),
                                         ("stylegan2-human-512-hub", "rectangular")])
def test_a_listed_unsupported_model_is_refused_before_any_download(name, reason):
    with pytest.raises(RewritingError, match=f"not supported yet: .*{reason}"):
        load_model(name)


def test_models_shows_resolution_size_and_what_is_cached_without_network(
    tmp_path, monkeypatch, capsys
):
    """A file in the Hugging Face cache counts as cached, with its size; nothing is fetched."""
    from hub_server import use_hub

    use_hub(monkeypatch, "http://127.0.0.1:9", tmp_path)  # a Hub that answers nothing
    commit = "a" * 40
    repo = tmp_path / "hub" / "models--justinpinkney--stylegan3-t-lhq-256"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "lhq-256-stylegan3-t-25Mimg.pkl").write_bytes(b"\0" * 3_000_000)
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    lhq = rows["stylegan3-t-lhq-256"]
    assert (lhq["cached"], lhq["size_mb"], lhq["resolution"]) == (True, 3.0, 256)
    assert rows["draggan-lions-512"]["cached"] is False
    assert rows["draggan-lions-512"]["size_mb"] is None
    assert rows["draggan-car-512"]["unsupported"].startswith("a TensorFlow-era")
    assert main(["models", "draggan-*"]) == 0
    table = capsys.readouterr().out
    assert "draggan-cat-256: listed, not supported yet" in table
    assert "stylegan3" not in table
