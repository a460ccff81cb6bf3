"""Forged browser states and the app's state handlers: whatever a visitor's browser hands back,
and whatever its model turned into since, the page opens on a fresh session with a one-line
warning, never an error, within the refusal budget; the strength slider with no before/after on
screen; the edit buttons locked while an edit runs.

The handlers are called in-process with forged states (fast); a few states go through the
running app as a browser's calls, and a Chromium puts some into its local storage and reloads.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import tempfile
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import gradio_client
import httpx
import pytest
import torch
from app_server import app_log, running_app
from memory import REFUSAL_BUDGET_MB, peak_during

import app
from rewriting.delta import Delta, save_stack
from rewriting.errors import RewritingError
from rewriting.limits import MAX_CONTEXT, MAX_REQUEST_BYTES, MAX_SNAPSHOT_CHARS
from rewriting_app import session as ss
from rewriting_lab.app_process import queue_call
from zoo import hub
from zoo.hub import MAX_STACK

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "examples" / "eye-to-mouth.json").read_text())
BOX = [24, 16, 40, 48]
DROPPED = "were dropped"
#: Longest warning a visitor should have to read.
WARNING_CHARS = 400


def nested(depth: int, inner: object = 0) -> object:
    """`inner` inside `depth` lists (built without recursion)."""
    for _ in range(depth):
        inner = [inner]
    return inner


def stack_text(deltas: list[Delta]) -> str:
    """Edits as a snapshot holds them: a stack file as base64 text."""
    with ss.stack_file() as path:
        save_stack(deltas, path)
        return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture(scope="module")
def edited(dcgan) -> ss.Session:
    """A session with one edit (eyes onto the mouth) and that edit's selections."""
    session, request = ss.Session.start("dcgan-digiface").loaded(EXAMPLE)
    return ss.run_edit(session, request, ss.statistics(session))[0]


@pytest.fixture(scope="module")
def good(edited) -> dict:
    """The session's snapshot as the browser keeps it."""
    return json.loads(json.dumps(ss.snapshot(edited)))


@pytest.fixture(scope="module")
def handlers() -> dict:
    """The page's handlers by name, with their input components."""
    demo = app.build()
    return {fn.name: fn for fn in demo.fns.values() if fn.fn is not None}


@pytest.fixture(autouse=True)
def fetched(monkeypatch) -> list:
    """What the Hub was asked for: nothing is reachable (an unreachable Hub)."""
    asked = []

    def refuse(source, progress=None):
        asked.append(source)
        raise RewritingError("this server cannot reach the Hugging Face Hub now")

    monkeypatch.setattr(hub, "resolve", refuse)
    return asked


def shown_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """The warnings the page showed (Gradio's, outside an event: Python warnings)."""
    return [str(w.message) for w in caught if Path(w.filename).parent.name == "gradio"]


def opened(handlers: dict, kept: object) -> tuple[ss.Session, list[str]]:
    """Open the page with `kept` as the browser's saved session: the visitor's session and the
    warnings shown."""
    load = handlers["on_load"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shown = load.fn(None, 0, kept)
    assert isinstance(shown, dict), shown
    return shown[load.inputs[0]], shown_warnings(caught)


def assert_fresh(handlers: dict, kept: object) -> str:
    """The page opens on a fresh session with one warning of one line, no more than the refusal
    budget above the memory before; returns the warning."""
    outcome = []
    rise, raised = peak_during(lambda: outcome.extend(opened(handlers, kept)))
    assert raised is None, repr(raised)
    session, said = outcome
    assert len(said) == 1, said
    assert DROPPED in said[0] and "\n" not in said[0] and len(said[0]) <= WARNING_CHARS, said
    assert session.generator.name == app.DEFAULT_MODEL and not session.stack.deltas
    assert (session.copy, session.paste, session.context) == (None, None, ())
    assert rise <= REFUSAL_BUDGET_MB, f"peak memory rose {rise:.0f} MB"
    return said[0]


def test_a_good_snapshot_comes_back(handlers, good, edited):
    session, said = opened(handlers, good)
    assert said == []
    assert len(session.stack.deltas) == 1 and session.paste == edited.paste
    assert len(session.context) == len(edited.context)


# ---- every stored field with garbage of every JSON type --------------------------------------
GARBAGE = {
    "null": None, "false": False, "true": True, "zero": 0, "int": 7, "huge int": 10**30,
    "float": 1.5, "text": "x", "empty text": "", "long text": "ab" * 4000,
    "list": [1, "a"], "empty list": [], "object": {"a": 1}, "empty object": {},
    "deep": nested(40),
}
FIELDS = ("model", "layer", "truncation", "edits", "copy", "paste", "context", "latents")
#: Values a field may hold (an empty selection, no truncation, no context, no photo).
VALID = {("truncation", "null"), ("copy", "null"), ("paste", "null"), ("context", "empty list"),
         ("latents", "empty object")}


@pytest.mark.parametrize("field, kind", [(f, k) for f in FIELDS for k in GARBAGE
                                         if (f, k) not in VALID])
def test_garbage_in_a_stored_field(handlers, good, fetched, field, kind):
    assert_fresh(handlers, {**good, field: GARBAGE[kind]})
    assert fetched == []


@pytest.mark.parametrize("field", ["format", *FIELDS])
def test_a_stored_field_missing(handlers, good, field):
    assert_fresh(handlers, {k: v for k, v in good.items() if k != field})


# ---- the whole state: not a session, too deep, too long, unknown keys ------------------------
WHOLE: dict[str, Callable[[dict], object]] = {
    "a number": lambda good: 7,
    "true": lambda good: True,
    "text": lambda good: "rewriting-session/1",
    "a list": lambda good: [good],
    "nested 100 000 deep": lambda good: nested(100_000),
    "another format": lambda good: {**good, "format": "rewriting-session/2"},
    "an unknown key": lambda good: {**good, "token": "hf_x"},
    "a huge unknown key": lambda good: {**good, "k" * 2**20: 1},
    "a field nested 100 000 deep": lambda good: {**good, "copy": nested(100_000)},
    "longer than the limit": lambda good: {**good, "latents": {"photo": "A" * MAX_SNAPSHOT_CHARS}},
    "a huge list": lambda good: {**good, "context": list(range(10**6))},
    "a million keys": lambda good: {**good, "latents": {f"p{i}": "" for i in range(10**6)}},
}


@pytest.mark.parametrize("name", list(WHOLE))
def test_a_forged_whole_state(handlers, good, name):
    assert_fresh(handlers, WHOLE[name](good))


def test_nothing_kept_opens_quietly(handlers):
    for kept in (None, {}, [], ""):
        session, said = opened(handlers, kept)
        assert said == [] and not session.stack.deltas


# ---- values of the right type that are wrong ------------------------------------------------
def delta_with(edited: ss.Session, **changes) -> Delta:
    return dataclasses.replace(edited.stack.deltas[0], **changes)


def copies(edited: ss.Session, count: int) -> list[Delta]:
    """The session's edit `count` times over, each with tensors of its own (as a file holds)."""
    delta = edited.stack.deltas[0]
    return [delta_with(edited, lam=delta.lam.clone(), directions=delta.directions.clone())
            for _ in range(count)]


def request_with(edited: ss.Session, **changes) -> dict:
    request = {**edited.stack.deltas[0].request, **changes}
    return {k: v for k, v in request.items() if v is not None}


PHOTO = {"photo": base64.b64encode(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ").decode()}
VALUES: dict[str, Callable[[dict, ss.Session], dict]] = {
    "model unknown": lambda g, e: {"model": "no-such-model"},
    "model a server path": lambda g, e: {"model": "/etc/passwd"},
    "model with 300 characters": lambda g, e: {"model": "m" * 300},
    "model a Hub revision with ..": lambda g, e: {"model": "hub:owner/name@../../../../tmp/x"},
    "model an absolute Hub revision": lambda g, e: {"model": "hub:owner/name@/etc"},
    "model a Cyrillic repository id": lambda g, e: {"model": "hub:own\u0435r/name"},
    "layer unknown": lambda g, e: {"layer": "main.77"},
    "layer of 300 characters": lambda g, e: {"layer": "l" * 300},
    "truncation on a model without": lambda g, e: {"truncation": 0.5},
    "truncation infinite": lambda g, e: {"truncation": float("inf")},
    "truncation NaN": lambda g, e: {"truncation": float("nan")},
    "edits not base64": lambda g, e: {"edits": "!!not base64"},
    "edits not safetensors": lambda g, e: {"edits": base64.b64encode(b"junk" * 9).decode()},
    "edits over the size limit": lambda g, e: {"edits": "A" * (MAX_REQUEST_BYTES + 4)},
    f"{MAX_STACK + 1} edits": lambda g, e: {"edits": stack_text(copies(e, MAX_STACK + 1))},
    "an edit without copy": lambda g, e: {"edits": stack_text(
        [delta_with(e, request=request_with(e, copy=None))])},
    "an edit without paste": lambda g, e: {"edits": stack_text(
        [delta_with(e, request=request_with(e, paste=None))])},
    "an edit with an empty request": lambda g, e: {"edits": stack_text(
        [delta_with(e, request={})])},
    "an edit whose request is a list": lambda g, e: {"edits": stack_text(
        [delta_with(e, request=[1, 2])])},
    "an edit whose request is nested 40 deep": lambda g, e: {"edits": stack_text(
        [delta_with(e, request={"a": nested(40)})])},
    "an edit on a sample out of range": lambda g, e: {"edits": stack_text(
        [delta_with(e, request=request_with(e, copy={"sample": 10**6, "mask": BOX}))])},
    "an edit with a mask outside": lambda g, e: {"edits": stack_text(
        [delta_with(e, request=request_with(e, paste={"sample": 1, "mask": [0, 0, 999, 9]}))])},
    "an edit with a mask of garbage": lambda g, e: {"edits": stack_text(
        [delta_with(e, request=request_with(e, paste={"sample": 1, "mask": "data:x"}))])},
    "an edit on an unknown layer": lambda g, e: {"edits": stack_text(
        [delta_with(e, request=request_with(e, layer="main.77"))])},
    "an edit of rank 10**9": lambda g, e: {"edits": stack_text(
        [delta_with(e, request=request_with(e, rank=10**9))])},
    "an edit with 65 context": lambda g, e: {"edits": stack_text(
        [delta_with(e, request=request_with(e, context=[{"sample": 1, "mask": BOX}] * 65))])},
    "an edit for another model": lambda g, e: {"edits": stack_text(
        [delta_with(e, model="other-model")])},
    "an edit at strength 11": lambda g, e: {"edits": stack_text([delta_with(e, strength=11.0)])},
    "an edit with NaN": lambda g, e: {"edits": stack_text(
        [delta_with(e, lam=torch.full_like(e.stack.deltas[0].lam, float("nan")))])},
    "copy on sample -1": lambda g, e: {"copy": {"sample": -1, "mask": BOX}},
    "copy on sample 10**6": lambda g, e: {"copy": {"sample": 10**6, "mask": BOX}},
    "copy on a photo never projected": lambda g, e: {"copy": {"sample": "photo", "mask": BOX}},
    "copy with a mask outside": lambda g, e: {"copy": {"sample": 1, "mask": [0, 0, 99, 99]}},
    "copy with a mask of garbage": lambda g, e: {"copy": {"sample": 1, "mask": "data:image/png;"
                                                                              "base64,AAAA"}},
    "copy with a mask nested": lambda g, e: {"copy": {"sample": 1, "mask": [[1, 2], 3, 4, 5]}},
    "paste without a mask": lambda g, e: {"paste": {"sample": 1}},
    f"{MAX_CONTEXT + 1} context": lambda g, e: {"context": [{"sample": 1, "mask": BOX}]
                                                * (MAX_CONTEXT + 1)},
    "context of numbers": lambda g, e: {"context": [1, 2]},
    "a latent named ..": lambda g, e: {"latents": {"..": PHOTO["photo"]}},
    "a latent of junk": lambda g, e: {"latents": PHOTO},
    "a latent that is a list": lambda g, e: {"latents": {"photo": [1, 2]}},
}


#: What the warning says for some of them, in the visitor's words.
REASONS = {
    "model unknown": "unknown model 'no-such-model': the model list",
    "model a Hub revision with ..": "bad revision",
    "model a Cyrillic repository id": "ASCII",
    f"{MAX_STACK + 1} edits": f"{MAX_STACK + 1} edits are more than the {MAX_STACK}",
    "an edit without copy": 'edit 1 has a malformed request: the request needs "copy"',
    "an edit without paste": 'the request needs "paste"',
    "an edit on a sample out of range": "out of range",
    "an edit for another model": "made for model 'other-model'",
    f"{MAX_CONTEXT + 1} context": f"at most {MAX_CONTEXT} selections",
}


@pytest.mark.parametrize("name", list(VALUES))
def test_a_wrong_value(handlers, good, edited, fetched, name):
    kept = {**good, **VALUES[name](good, edited)}
    said = assert_fresh(handlers, kept)
    assert REASONS.get(name, "") in said and "python -m" not in said
    assert fetched == []


#: How a hostile repository may make loading fail.
FAILURES = [
    RewritingError("hub:owner/name: its edit.json lacks files"), RecursionError("deep"),
    ValueError("bad kwargs"), TypeError("text where numbers belong"), IndexError("no conv"),
    KeyError("default_layer"), MemoryError(),
]


def hostile_hub(monkeypatch, failure: Exception) -> None:
    """Every `hub:` model fails to load with `failure`; catalog models load."""
    real = ss.load_any_stack

    def load(name, progress=None):
        if name.startswith(ss.HUB_PREFIX):
            raise failure
        return real(name, progress)

    monkeypatch.setattr(ss, "load_any_stack", load)


@pytest.mark.parametrize("failure", FAILURES)
def test_a_stored_hub_model_that_turned_hostile(handlers, good, monkeypatch, failure):
    """A repository the visitor had loaded now fails to load, however it fails."""
    hostile_hub(monkeypatch, failure)
    said = assert_fresh(handlers, {**good, "model": "hub:owner/name"})
    assert "Traceback" not in said


@pytest.mark.parametrize("failure", FAILURES)
def test_picking_a_hostile_hub_model_keeps_the_page(handlers, monkeypatch, failure):
    """Typed as the model, a hostile repository is a warning; the visitor stays where it was."""
    hostile_hub(monkeypatch, failure)
    pick = handlers["pick_model"]
    outcome = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rise, raised = peak_during(lambda: outcome.append(pick.fn("hub:owner/name", None)))
    said = shown_warnings(caught)
    assert raised is None and len(said) == 1 and "\n" not in said[0], (raised, said)
    assert said[0].startswith("hub:owner/name could not be loaded")
    assert outcome[0] == {component(pick, "model"): app.DEFAULT_MODEL}
    assert rise <= REFUSAL_BUDGET_MB


def test_a_stored_hub_model_on_an_unreachable_hub(handlers, good, fetched):
    said = assert_fresh(handlers, {**good, "model": "hub:owner/name"})
    assert "cannot reach" in said and len(fetched) == 1


def test_a_paper_format_request_in_an_edit_restores_and_reads(handlers, good, edited):
    """An edit whose request is in the paper's format (valid) restores, and its history line
    reads as any other."""
    paper = {"object": [1, BOX], "paste": [7, [40, 16, 56, 48]], "key": [[7, BOX]],
             "model": "dcgan-digiface", "layer": "main.6"}
    session, said = opened(handlers, {**good, "edits": stack_text(
        [delta_with(edited, request=paper)])})
    assert said == []
    strength = session.stack.deltas[0].strength
    assert ss.history(session) == [
        f"1. copy #1 → paste #7, 1 context mark, layer main.6, strength {strength:g}"]


def test_a_session_never_holds_more_than_the_stack_limit(edited):
    full = edited.with_edits([edited.stack.deltas[0]] * MAX_STACK)
    with pytest.raises(RewritingError, match=f"holds {MAX_STACK} edits"):
        full.with_edit(edited.stack.deltas[0])
    with pytest.raises(RewritingError, match=f"more than the {MAX_STACK}"):
        edited.with_edits([edited.stack.deltas[0]] * (MAX_STACK + 1))


# ---- the strength slider with no before/after on screen ---------------------------------------
def strength_to(handlers: dict, session: ss.Session, value: object) -> tuple[dict, list[str]]:
    """Release the strength slider at `value` with no before/after shown and nothing pending:
    what the page updates and the warnings shown."""
    rescale = handlers["rescale"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shown = rescale.fn(session, value, 0, None, None)
    return shown, shown_warnings(caught)


def component(fn, elem_id: str):
    """The output of handler `fn` with this elem_id."""
    return next(c for c in fn.outputs if getattr(c, "elem_id", None) == elem_id)


def test_strength_after_a_reload_with_edits(handlers, good):
    session, _ = opened(handlers, good)
    shown, said = strength_to(handlers, session, 0.5)
    assert said == []
    state = shown[handlers["rescale"].inputs[0]]
    assert state.stack.deltas[-1].strength == 0.5
    assert component(handlers["rescale"], "comparison") not in shown
    assert "now at strength 0.5" in shown[component(handlers["rescale"], "result")]


def test_strength_after_a_revert(handlers, edited):
    revert = handlers["revert_picked"]
    two = edited.with_edits([edited.stack.deltas[0], edited.with_strength(0.5).stack.deltas[0]])
    shown = revert.fn(two, 1, 0, "Edited")
    session = shown[revert.inputs[0]]
    assert len(session.stack.deltas) == 1
    # The slider moves to the edit it now scales, the latest left.
    assert shown[component(revert, "strength")] == session.stack.deltas[-1].strength
    shown, said = strength_to(handlers, session, 3.0)
    assert said == [] and shown[handlers["rescale"].inputs[0]].stack.deltas[-1].strength == 3.0


@pytest.mark.parametrize("value, message", [
    (None, "must be a number"), ("abc", "must be a number"), ([1], "must be a number"),
    (float("nan"), "between 0 and"), (-1, "between 0 and"), (1e308, "between 0 and"),
])
def test_strength_of_garbage_is_a_warning(handlers, edited, value, message):
    shown, said = strength_to(handlers, edited, value)
    assert len(said) == 1 and message in said[0] and "\n" not in said[0], said


def test_strength_with_no_edit_is_a_warning(handlers, dcgan):
    _, said = strength_to(handlers, ss.Session.start("dcgan-digiface"), 1.0)
    assert len(said) == 1 and "no edit to scale" in said[0]


# ---- Execute (and every button that edits) locked while an edit runs ---------------------------
EDIT_BUTTONS = ("execute", "erase", "example-0", "example-1", "example-2")


def test_edit_buttons_lock_until_the_edit_is_measured_or_fails():
    """Each click that edits disables every edit button in the page first; each step of it
    that fails, and the last step (its measures kept), enables them again; the lock adds
    events after all others, so every earlier event keeps its position."""
    config = app.build().get_config_file()
    ids = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    deps = config["dependencies"]
    clicks = [d for d in deps if any(ids.get(t[0]) in EDIT_BUTTONS and t[1] == "click"
                                     for t in d["targets"])]
    assert len(clicks) == len(EDIT_BUTTONS)
    for click in clicks:
        assert "disabled = true" in click["js"]
        assert all(f"#{name}" in click["js"] for name in EDIT_BUTTONS)
    unlocks = [d for d in deps if d["js"] and "disabled = false" in d["js"]]
    assert unlocks and min(d["id"] for d in unlocks) > max(
        i for i, d in enumerate(deps) if not (d["js"] and "disabled = false" in d["js"]))
    after = {}
    for d in unlocks:
        after.setdefault(d["trigger_after"], set()).add(
            "failure" if d["trigger_only_on_failure"] else "then")
    for click in clicks:  # the click, its measure and its keeping of the measures
        chain = [click["id"]]
        while nxt := [d for d in deps if d["trigger_after"] == chain[-1]
                      and d["trigger_only_on_success"]
                      and not d["api_name"].startswith("edited_page")]:
            chain.append(nxt[0]["id"])
        assert len(chain) == 3 and [after.get(step) for step in chain] == [{"failure"}] * 2 + [
            {"failure", "then"}], chain


# ---- through the running app, as a browser's calls --------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    with running_app(folder) as url:
        yield url, folder


def load_index(url: str) -> int:
    config = httpx.get(url.rstrip("/") + "/config", timeout=60).json()
    return next(i for i, d in enumerate(config["dependencies"])
                if any(t[1] == "load" for t in d["targets"]))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["a Hub revision with ..", "65 edits", "an edit without copy",
                                  "a field nested 200 deep", "garbage"])
def test_the_running_app_opens_on_a_forged_state(served, good, edited, name):
    url, folder = served
    kept = {
        "a Hub revision with ..": {**good, "model": "hub:owner/name@../../../../tmp/x"},
        "65 edits": {**good, **VALUES[f"{MAX_STACK + 1} edits"](good, edited)},
        "an edit without copy": {**good, **VALUES["an edit without copy"](good, edited)},
        "a field nested 200 deep": {**good, "layer": nested(200)},
        "garbage": {**good, "edits": [None, {"x": 1}], "context": "all"},
    }[name]
    messages = queue_call(url, load_index(url), [None, 0, kept], uuid.uuid4().hex)
    done = messages[-1]
    assert done["msg"] == "process_completed" and done["success"], (done, app_log(folder))
    logs = [m for m in messages if m["msg"] == "log"]
    assert [m["level"] for m in logs] == ["warning"] and DROPPED in logs[0]["log"], logs
    assert "\n" not in logs[0]["log"]


@pytest.mark.slow
def test_the_api_still_works_by_name(served):
    """The events the lock added come last: gradio_client finds every endpoint by its name."""
    visitor = gradio_client.Client(served[0], verbose=False, download_files=tempfile.mkdtemp())
    metrics, _ = visitor.predict(json.dumps(EXAMPLE), api_name="/execute")
    assert metrics["edits"] == 1
    _, info = visitor.predict("0-3", True, api_name="/sample")
    assert len(info["edits"]) == 1
    assert visitor.predict("0", api_name="/revert")["edits"] == []


# ---- in Chromium: a hostile local storage, then a reload ---------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
#: Encrypt as Gradio's BrowserState does (CryptoJS AES-256-CBC, OpenSSL's "Salted__" format),
#: with the key and IV derived in Python and the browser's own WebCrypto.
STORE = """async ({key, iv, salt, text, storage}) => {
  const k = await crypto.subtle.importKey('raw', new Uint8Array(key), 'AES-CBC', false,
                                          ['encrypt']);
  const body = new Uint8Array(await crypto.subtle.encrypt(
      {name: 'AES-CBC', iv: new Uint8Array(iv)}, k, new TextEncoder().encode(text)));
  const all = [...new TextEncoder().encode('Salted__'), ...salt, ...body];
  let binary = '';
  for (const b of all) binary += String.fromCharCode(b);
  localStorage.setItem(storage, 'AAAAAAAAAAAAAAAAAAAAAA==:' + btoa(binary));
}"""


def forge(tab, text: str) -> str:
    """Put JSON `text` into this browser's kept session, encrypted with the app's secret; what
    the local storage then holds."""
    password = hashlib.sha256(app.BROWSER_SECRET.encode()).hexdigest().encode()
    salt, derived, block = os.urandom(8), b"", b""
    while len(derived) < 48:  # OpenSSL's EVP_BytesToKey (MD5), as CryptoJS derives them
        block = hashlib.md5(block + password + salt).digest()
        derived += block
    tab.evaluate(STORE, {"key": list(derived[:32]), "iv": list(derived[32:]),
                         "salt": list(salt), "text": text, "storage": app.BROWSER_KEY})
    return tab.evaluate(f"localStorage.getItem({app.BROWSER_KEY!r})")


@pytest.fixture(scope="module")
def chromium(served):
    from playwright import sync_api as playwright

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def page_opened(tab) -> None:
    """Wait until the page shows its grid and has kept its session in the browser (a later
    write would replace a forged one)."""
    tab.wait_for_selector("#paint .cell img")
    tab.wait_for_function(f"localStorage.getItem({app.BROWSER_KEY!r})")


@pytest.mark.slow
def test_a_hostile_local_storage_then_reloads(served, chromium, good, edited):
    """A kept session with a Hub revision with .., one nested 2 000 deep (too deep for the
    server to read: the page hands a note over instead) and one whose edit lacks its copy: each
    reload opens the page with a warning and no error badge, and the next reload opens quietly
    (the fresh session replaced the hostile one)."""
    url, folder = served
    tab = chromium.new_context().new_page()
    tab.set_default_timeout(120_000)
    try:
        tab.goto(url)
        page_opened(tab)
        deep = "[" * 2000 + "]" * 2000  # too deep for Python's json to write or read
        for text in (json.dumps({**good, "model": "hub:owner/name@../../../../tmp/x"}), deep,
                     json.dumps({**good, **VALUES["an edit without copy"](good, edited)})):
            stored = forge(tab, text)
            tab.reload()
            page_opened(tab)
            tab.wait_for_function(f"document.body.innerText.includes({DROPPED!r})")
            assert "Error" not in tab.inner_text("body"), tab.inner_text("body")
            assert tab.locator(".toast-body").count() == 1
            tab.wait_for_function(f"old => localStorage.getItem({app.BROWSER_KEY!r}) !== old",
                                  arg=stored)
            tab.reload()
            page_opened(tab)
            tab.wait_for_timeout(1500)
            assert DROPPED not in tab.inner_text("body")
            assert "No edits" in tab.inner_text("#history")
    except Exception:
        print(app_log(folder))
        raise
    finally:
        tab.context.close()


@pytest.mark.slow
def test_clicks_while_an_edit_runs_do_nothing(served, chromium):
    """Erase pressed, then every edit button again and again while that edit runs (and is
    measured), applies it once (Execute again on the example's own marks would be refused:
    that edit is already applied)."""
    tab = chromium.new_context().new_page()
    tab.set_default_timeout(120_000)
    try:
        tab.goto(served[0])
        page_opened(tab)
        tab.click("#example-2")
        tab.wait_for_function("document.querySelectorAll('#history li').length === 1")
        tab.wait_for_function("!document.querySelector('#execute').disabled")
        locked = tab.evaluate("""async () => {
          const button = document.querySelector('#erase');
          button.click();
          let presses = 0;
          await new Promise(r => setTimeout(r, 50));
          while (button.disabled) {
            for (const id of ['execute', 'erase', 'example-0']) document.getElementById(id).click();
            presses += 1;
            await new Promise(r => setTimeout(r, 100));
          }
          return presses;
        }""")
        assert locked > 3, f"the buttons were locked for only {locked} presses"
        tab.wait_for_timeout(1500)
        assert tab.evaluate("document.querySelectorAll('#history li').length") == 2
    except Exception:
        print(app_log(served[1]))
        raise
    finally:
        tab.context.close()
