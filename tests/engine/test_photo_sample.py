"""A projected photo as the paste or a context sample of an edit: the request names its latent,
the delta stores it, and the edit reloads and reproduces."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from test_project import DATA, run

from rewriting.delta import Delta, EditStack, load_stack, save_stack
from rewriting.efficacy import RuleProbe
from rewriting.errors import RewritingError
from rewriting.latents import NamedLatent
from rewriting.project import load_latent, project, render_latent
from rewriting.request import Selection, parse_request
from rewriting.rewrite import execute
from rewriting.stats import key_stats
from zoo.loader import build_from_file

MOUTH = [40, 16, 56, 48]
EYES = [24, 16, 40, 48]
#: Sample 12 is the paste; the photo request names a latent equal to sample 12's z instead.
BY_NUMBER = {
    "model": "dcgan-digiface", "layer": "main.6", "goal": "context",
    "copy": {"sample": 1, "mask": EYES},
    "paste": {"sample": 12, "mask": MOUTH},
    "context": [{"sample": 7, "mask": MOUTH}, {"sample": 12, "mask": MOUTH}],
}


@pytest.fixture(scope="module")
def stats(dcgan):
    return key_stats(dcgan, dcgan.layer("main.6"))


def photo_of(dcgan, number: int) -> NamedLatent:
    """A latent that is exactly sample `number`'s z, as a projected photo would carry it."""
    return NamedLatent(dcgan.latents([number]), dcgan.name, dcgan.weights_sha256)


def by_photo(latent: NamedLatent) -> dict:
    return {**BY_NUMBER, "latents": {"photo": f"sha256:{latent.digest()}"},
            "paste": {"sample": "photo", "mask": MOUTH},
            "context": [{"sample": 7, "mask": MOUTH}, {"sample": "photo", "mask": MOUTH}]}


def test_photo_paste_equal_to_a_sample_gives_the_same_delta_and_reloads(dcgan, stats, tmp_path):
    latent = photo_of(dcgan, 12)
    numbered = execute(dcgan, parse_request(BY_NUMBER), stats=stats)
    request = parse_request(by_photo(latent), latents={"photo": latent})
    photo = execute(dcgan, request, stats=stats)
    assert torch.equal(photo.delta.lam, numbered.delta.lam)
    assert torch.equal(photo.delta.directions, numbered.delta.directions)
    assert photo.delta.request["latents"] == {"photo": f"sha256:{latent.digest()}"}
    weights = EditStack(dcgan, [photo.delta]).weights()
    held_out = list(range(1000, 1008))
    assert (RuleProbe(dcgan, photo.problem, held_out).measure(weights)
            == RuleProbe(dcgan, numbered.problem, held_out).measure(weights))

    photo.delta.save(tmp_path / "delta.safetensors")
    save_stack([numbered.delta, photo.delta], tmp_path / "stack.safetensors")
    for loaded in (Delta.load(tmp_path / "delta.safetensors"),
                   load_stack(tmp_path / "stack.safetensors")[1]):
        assert torch.equal(loaded.latents["photo"].latent, latent.latent)
        again = execute(dcgan, parse_request(loaded.request, latents=loaded.latents),
                        stats=stats)
        assert torch.equal(again.delta.lam, photo.delta.lam)
    assert load_stack(tmp_path / "stack.safetensors")[0].latents == {}


def test_request_naming_latents_it_does_not_carry_is_refused(dcgan):
    latent = photo_of(dcgan, 12)
    with pytest.raises(RewritingError, match="is not given with the request"):
        parse_request(by_photo(latent))
    with pytest.raises(RewritingError, match="is not given with the request"):
        parse_request(by_photo(latent), latents={"photo": photo_of(dcgan, 13)})
    with pytest.raises(RewritingError, match="names no latent in the request's"):
        parse_request({**BY_NUMBER, "paste": {"sample": "selfie", "mask": MOUTH}})
    with pytest.raises(RewritingError, match="latent files are read only for request files"):
        parse_request({**by_photo(latent), "latents": {"photo": "/etc/passwd"}})
    with pytest.raises(RewritingError, match="must be a non-negative integer or a latent"):
        parse_request({**BY_NUMBER, "paste": {"sample": "../x", "mask": MOUTH}})


def test_latent_that_cannot_stand_for_a_sample_is_refused(dcgan, stats):
    sg2 = build_from_file(DATA / "stylegan2_tiny_g_ema.pt", "stylegan2")
    cases = {
        "projected into 'other'": NamedLatent(dcgan.latents([3]), "other", "0" * 64),
        "holds 2 latents": NamedLatent(dcgan.latents([3, 4]), dcgan.name,
                                       dcgan.weights_sha256),
        "has shape [1, 7]": NamedLatent(torch.zeros(1, 7), dcgan.name, dcgan.weights_sha256),
    }
    for message, latent in cases.items():
        request = parse_request(by_photo(latent), latents={"photo": latent})
        with pytest.raises(RewritingError, match=message.replace("[", r"\[")):
            execute(dcgan, request, stats=stats)
    w = NamedLatent(sg2.to_latent(sg2.latents([0]), 0.5), sg2.name, sg2.weights_sha256)
    request = parse_request({**by_photo(w), "model": sg2.name, "layer": None},
                            latents={"photo": w})
    with pytest.raises(RewritingError, match="only on models sampled from z"):
        execute(sg2, request)


def test_delta_whose_latent_was_changed_is_refused(dcgan, stats, tmp_path):
    latent = photo_of(dcgan, 12)
    delta = execute(dcgan, parse_request(by_photo(latent), latents={"photo": latent}),
                    stats=stats).delta
    delta.latents = {"photo": photo_of(dcgan, 13)}
    delta.save(tmp_path / "d.safetensors")
    with pytest.raises(RewritingError, match="its latent 'photo' is not the one its request"):
        Delta.load(tmp_path / "d.safetensors")


def test_cli_edit_with_a_projected_photo_as_paste(dcgan, tmp_path):
    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "astronaut.png")
    done = run("project", "astronaut.png", "--steps", "5", "--starts", "1", "--out", "me",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    request = {**BY_NUMBER, "latents": {"photo": "me/latent.safetensors"},
               "paste": {"sample": "photo", "mask": MOUTH}}
    (tmp_path / "photo.json").write_text(json.dumps(request))
    done = run("edit", "photo.json", "--held-out", "8", "--show", "2", "--stats-samples", "200",
               "--out", "edit", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    delta = Delta.load(tmp_path / "edit" / "delta.safetensors")
    projected = load_latent(tmp_path / "me" / "latent.safetensors", dcgan)
    assert torch.equal(delta.latents["photo"].latent, projected.latent)
    saved = json.loads((tmp_path / "edit" / "request.json").read_text())
    assert saved["paste"]["sample"] == "photo" and saved["latents"]["photo"].startswith("sha256:")
    before = render_latent(dcgan, projected)
    after = render_latent(dcgan, projected, EditStack(dcgan, [delta]).weights())
    assert (after.float() - before.float()).abs().mean() > 0.5

    (tmp_path / "bad.json").write_text(json.dumps(
        {**request, "latents": {"photo": "edit/delta.safetensors"}}))
    done = run("edit", "bad.json", "--out", "bad", cwd=tmp_path)
    assert done.returncode == 2 and "is not a latent file written by `project`" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_projection_named_is_the_latent_it_saves(dcgan, tmp_path):
    image = dcgan.to_image(dcgan.synthesize(dcgan.latents([3])))[0].numpy()
    found = project(dcgan, image, steps=2, starts=1)
    found.save(tmp_path / "l.safetensors")
    named = load_latent(tmp_path / "l.safetensors", dcgan)
    assert found.named().digest() == NamedLatent(named.latent, dcgan.name,
                                                 dcgan.weights_sha256).digest()


def test_session_edits_with_its_photo_and_keeps_it_across_a_snapshot(dcgan, stats):
    from rewriting_app import session as ss

    photo = photo_of(dcgan, 12)
    start = ss.Session.start("dcgan-digiface")
    with pytest.raises(RewritingError, match="there is no 'photo' to select on"):
        start.with_selection("paste", Selection("photo", MOUTH))
    sessions = []
    for paste in ("photo", 12):
        session = start.with_photo(photo)
        for role, selection in (("copy", Selection(1, EYES)), ("paste", Selection(paste, MOUTH)),
                                ("context", Selection(7, MOUTH)),
                                ("context", Selection(paste, MOUTH))):
            session = session.with_selection(role, selection)
        sessions.append(session)
    session, numbered = sessions
    assert np.array_equal(ss.samples(session, ["photo"]), ss.samples(session, [12]))
    assert np.array_equal(ss.paste_preview(session), ss.paste_preview(numbered))
    request = session.request()
    assert request.latents == {"photo": photo} and numbered.request().latents == {}
    edited, _ = ss.run_edit(session, request, stats)
    by_number, _ = ss.run_edit(numbered, numbered.request(), stats)
    assert torch.equal(edited.stack.deltas[0].lam, by_number.stack.deltas[0].lam)

    back = ss.restore(json.loads(json.dumps(ss.snapshot(edited))))
    assert back.latents["photo"].digest() == photo.digest()
    assert back.paste == edited.paste and back.context == edited.context
    assert torch.equal(back.stack.deltas[0].latents["photo"].latent, photo.latent)
    for bad, message in (("not base64!", "latent 'photo' is malformed"),
                         (base64.b64encode(b"{}").decode(), "latent 'photo' is malformed")):
        kept = {**ss.snapshot(edited), "latents": {"photo": bad}}
        with pytest.raises(RewritingError, match=message):
            ss.restore(kept)
    again = back.with_photo(photo_of(dcgan, 13))
    assert again.paste is None and again.context == (Selection(7, MOUTH),)
