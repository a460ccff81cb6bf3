"""The one exception type the engine raises for bad input, so callers can show it as a message."""


class RewritingError(ValueError):
    """A request, file or model the engine cannot use; the message says what and how to fix it."""
