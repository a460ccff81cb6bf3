"""A visitor's session kept outside the server: the browser snapshot and the stack file."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from rewriting.delta import load_stack, save_stack
from rewriting.errors import RewritingError
from rewriting_app import session as ss

ROOT = Path(__file__).resolve().parents[2]
SHOWN = [1000, 1001, 1002, 1003]


@pytest.fixture(scope="module")
def edited(dcgan):
    """A session with two edits (eyes onto the mouth, then at half strength again) and a
    pending copy selection."""
    session = ss.Session.start("dcgan-digiface")
    data = json.loads((ROOT / "examples" / "eye-to-mouth.json").read_text())
    session, request = session.loaded(data)
    session, _ = ss.run_edit(session, request, ss.statistics(session))
    session, _ = ss.run_edit(session, request, ss.statistics(session))
    return session.with_strength(0.5)


def test_snapshot_round_trip_gives_the_same_model_and_selections(edited):
    kept = json.loads(json.dumps(ss.snapshot(edited)))  # what the browser stores
    back = ss.restore(kept)
    assert np.array_equal(ss.samples(back, SHOWN), ss.samples(edited, SHOWN))
    assert not np.array_equal(ss.samples(back, SHOWN), ss.samples(back, SHOWN, edited=False))
    strengths = [d.strength for d in back.stack.deltas]
    assert strengths == [d.strength for d in edited.stack.deltas] and strengths[-1] == 0.5
    assert (back.copy, back.paste, back.context) == (edited.copy, edited.paste, edited.context)
    assert back.layer == edited.layer


@pytest.mark.parametrize("change, message", [
    ({"format": "something-else"}, "not one this version"),
    ({"edits": "!!not base64"}, "not base64"),
    ({"edits": base64.b64encode(b"\x10\x00\x00\x00\x00\x00\x00\x00{}").decode()}, "cannot read"),
    ({"model": "no-such-model"}, "unknown model"),
    ({"layer": "main.77"}, "main.77"),
    ({"context": [{"sample": -1, "mask": [0, 0, 8, 8]}]}, "non-negative"),
    ({"context": "all"}, "\"context\" is not a list"),
])
def test_a_tampered_snapshot_is_refused_with_a_clear_message(edited, change, message):
    with pytest.raises(RewritingError, match=message):
        ss.restore({**ss.snapshot(edited), **change})


def test_stack_file_round_trip_and_bad_files(edited, tmp_path):
    path = tmp_path / "edits.safetensors"
    save_stack(edited.stack.deltas, path)
    back = edited.with_edits(load_stack(path))
    assert np.array_equal(ss.samples(back, SHOWN), ss.samples(edited, SHOWN))

    tensors = load_file(str(path))
    del tensors["1.lambda"]
    broken = tmp_path / "broken.safetensors"
    save_file(tensors, str(broken), metadata={"format": "rewriting-stack/1",
                                              "edits": json.dumps([{}, {}])})
    with pytest.raises(RewritingError, match="do not match its 2 edits"):
        load_stack(broken, "broken.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(RewritingError, match="cannot read junk"):
        load_stack(tmp_path / "junk.safetensors", "junk")
