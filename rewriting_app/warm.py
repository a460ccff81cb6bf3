"""The app's warm-up as it starts: what a visitor's first click would otherwise wait for.

It runs in a daemon thread, so the page is served at once. First the key statistics of the
default model at its default layer and of the examples at theirs, through `session.statistics`
(a visitor who clicks meanwhile waits on the same computation, never a second one); computed,
they land in the digest-checked disk cache, which the next start loads in well under a second.
Then the examples' pictures, and each example executed once on one thread, its result thrown
away: the base model's readings and renders that every edit at that layer reads, and each
example's settings search, are then kept in memory. One line per layer and per edit goes to
stderr, one per failed step (the warm-up goes on), and `WARM_DONE` last. On ZeroGPU nothing
is warmed: there each computation borrows a GPU in a worker of its own.
"""

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rewriting.errors import one_line
from rewriting.limits import read_json_file
from rewriting.request import EditRequest
from rewriting.threads import one_thread

from . import session as ss
from .example_pictures import example_thumbnail
from .gpu import zero_gpu
from .settings import COMPARE_SHOWN, EMBEDDED_MODEL, EXAMPLES, EXAMPLES_DIR

#: The warm-up's last line on stderr (the app benchmark waits for it).
WARM_DONE = "warm-up done"
#: Set once the warm-up is over, done or failed.
ready = threading.Event()
#: A layer's statistics as `session.statistics` names them: model, layer and truncation.
Layer = tuple[str, str, float | None]


def say(line: str) -> None:
    """One line of the warm-up's log, on stderr."""
    print(line, file=sys.stderr, flush=True)


def step(what: str, run: Callable[[], object]) -> None:
    """Run one step of the warm-up; a failure is one line of the log, and the warm-up goes on
    (the visitor who needs that step gets its message then)."""
    try:
        run()
    except Exception as err:  # noqa: BLE001 - nothing the warm-up meets may stop the app
        say(f"warm-up: {what} failed: {one_line(err)}")


def example_files() -> list[Path]:
    """The example buttons' request files, in the page's order."""
    return [EXAMPLES_DIR / name for name in EXAMPLES.values()]


def example(request_file: Path) -> tuple[ss.Session, EditRequest]:
    """An example's request loaded in a fresh session on the embedded model, as its button
    loads it."""
    data = read_json_file(request_file, "example")
    return ss.Session.start(EMBEDDED_MODEL).loaded(data)


def layer_of(session: ss.Session) -> Layer:
    """The layer whose statistics a session's edit reads."""
    return session.generator.name, session.layer, session.truncation


def warm_statistics(session: ss.Session) -> None:
    """The key statistics of the session's layer, and one line saying where they came from."""
    started, computed = time.perf_counter(), []
    ss.statistics(session, lambda done, total: computed.append(done))
    seconds = time.perf_counter() - started
    how = (f"computed in {seconds:.1f} s" if computed
           else f"loaded from cache in {seconds:.2f} s")
    say(f"statistics for {session.generator.name} {session.layer}: {how}")


def warm_edit(session: ss.Session, request: EditRequest) -> None:
    """Execute a request as an example button does (its settings searched, solved, shown
    before and after, measured), on one thread; the result is thrown away."""
    started = time.perf_counter()
    with one_thread():
        found = None
        if request.auto:
            request, found = ss.choose_settings(session, request)
        stats = ss.statistics(session.with_layer(request.layer or session.layer))
        done, shown, pending = ss.execute_shown(session, request, stats, COMPARE_SHOWN, found)
        ss.comparison(done, shown)
        for selection in (session.copy, session.paste, *session.context):
            ss.selection_image(session, selection)
        ss.measure(pending)
    say(f"an edit at {session.generator.name} {session.layer} warmed in "
        f"{time.perf_counter() - started:.1f} s")


def once_per_layer(opened: Callable[[], tuple[ss.Session, ...]], seen: set[Layer],
                   warm: Callable[..., None]) -> None:
    """`warm` what `opened` returns (a session first) unless its layer was warmed before."""
    loaded = opened()
    if layer_of(loaded[0]) not in seen:
        seen.add(layer_of(loaded[0]))
        warm(*loaded)


def warm_layers(default_model: str) -> None:
    """The statistics of the default model's default layer, then of each example's layer, once
    each (opened one by one: a model that fails to load stops no other)."""
    seen: set[Layer] = set()
    step("the default model's statistics", lambda: once_per_layer(
        lambda: (ss.Session.start(default_model),), seen, warm_statistics))
    for request_file in example_files():
        step(f"the statistics of {request_file.name}", lambda f=request_file: once_per_layer(
            lambda: example(f)[:1], seen, warm_statistics))


def warm_examples() -> None:
    """The examples' pictures (on one thread, as an example button draws its selections), then
    each example executed (its settings search is then kept for the visitors' first click)."""
    with one_thread():
        for request_file in example_files():
            step(f"the picture of {request_file.name}",
                 lambda f=request_file: example_thumbnail(f))
    for request_file in example_files():
        step(f"the edit of {request_file.name}", lambda f=request_file: warm_edit(*example(f)))


def warm_up(default_model: str) -> None:
    """The whole warm-up (see the module's text); `ready` is set at its end."""
    started = time.perf_counter()
    try:
        if zero_gpu():
            say("warm-up skipped on ZeroGPU: each computation borrows a GPU when first asked")
            return
        warm_layers(default_model)
        warm_examples()
    finally:
        say(f"{WARM_DONE} in {time.perf_counter() - started:.1f} s")
        ready.set()


def warm_up_in_background(default_model: str) -> threading.Thread:
    """Start `warm_up` in a daemon thread (the app serves meanwhile); the thread."""
    thread = threading.Thread(target=warm_up, args=(default_model,), name="warm-up",
                              daemon=True)
    thread.start()
    return thread
