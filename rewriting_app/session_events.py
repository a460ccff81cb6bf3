"""The page opens on the session kept in the visitor's browser, and keeps every change there."""

import gradio as gr

from rewriting.errors import RewritingError, one_line
from rewriting.limits import MAX_JSON_DEPTH

from . import session as ss
from .handlers import current, friendly
from .page import Page
from .settings import PRIVATE

#: JavaScript run in the page as it opens: a session kept in this browser nested more than
#: MAX_JSON_DEPTH levels deep is handed over as a note instead, which the server refuses with a
#: warning (too deep for the server to read at all, it would fail the whole call and every
#: component would show an error).
SHALLOW_KEPT = f"""(st, start, kept) => {{
  const open = [[kept, 1]];
  while (open.length) {{
    const [item, depth] = open.pop();
    if (item === null || typeof item !== 'object') continue;
    if (depth > {MAX_JSON_DEPTH}) return [st, start, 'nested too deep'];
    for (const value of Object.values(item)) open.push([value, depth + 1]);
  }}
  return [st, start, kept];
}}"""
#: Most characters of a reason quoted in a warning (it may quote an untrusted value).
REASON_CHARS = 240


def restored(kept: object) -> ss.Session | None:
    """The session kept in this browser, or None (a fresh one) with a warning that says what
    was dropped: whatever the browser handed back, and whatever its model now is, the page
    opens."""
    try:
        session = ss.restore(kept)
    except Exception as err:  # untrusted, and its model may have changed since: start afresh
        why = (one_line(err)[:REASON_CHARS] if isinstance(err, RewritingError)
               else "they could not be used")
        gr.Warning(f"The edits and selections kept in this browser were dropped ({why}); "
                   "you start afresh on the original model.")
        return None
    if session.stack.deltas:
        gr.Info(f"Restored your {len(session.stack.deltas)} edit(s) from this browser.")
    return session


def session_events(demo: gr.Blocks, p: Page, saved: gr.BrowserState) -> None:
    """Open the page on the session kept in this browser; keep every change there."""

    @friendly
    def on_load(st, start, kept):
        if st is None and kept:
            st = restored(kept)
        return p.everything(current(st), start)

    def keep(st):
        return gr.skip() if st is None else ss.snapshot(st)

    demo.load(on_load, [p.state, p.first, saved], p.every(), js=SHALLOW_KEPT,
              **PRIVATE)
    p.state.change(keep, p.state, saved, **PRIVATE)
