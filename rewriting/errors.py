"""The one exception type the engine raises for bad input, so callers can show it as a message."""


class RewritingError(ValueError):
    """A request, file or model the engine cannot use; the message says what and how to fix it."""


def one_line(err: BaseException) -> str:
    """An error's message on a single line (whitespace, newlines included, collapsed)."""
    return " ".join(str(err).split()) or type(err).__name__
