"""Who may publish from the page: the signed-in visitor on a Space, elsewhere only if allowed."""

import os

import gradio as gr
from huggingface_hub import get_token

from rewriting.errors import RewritingError

#: Running as a Hugging Face Space: publishing then goes through the visitor's own login.
ON_SPACE = bool(os.environ.get("SPACE_ID"))
#: Elsewhere every visitor would publish with this machine's token: off unless this is "1".
ALLOW_PUBLISH = "REWRITING_ALLOW_PUBLISH"
PUBLISH_OFF = (
    "publishing is off in this app: outside a Space it would upload with this server's own Hub "
    "token for any visitor; only whoever runs the server can allow it"
)


def publishing_allowed() -> bool:
    """On a Space (visitors sign in), or where whoever started the app set ALLOW_PUBLISH=1."""
    return ON_SPACE or os.environ.get(ALLOW_PUBLISH) == "1"


def publish_help() -> str:
    """What the Publish panel says: how publishing works here, or that it is off."""
    what = (
        "Push your edits, all of them as one stack (the full edited weights, or only the "
        "deltas), each with its request and before/after picture, and a model card that lists "
        "every rule, to a Hub repository in one commit. Loading it back as `hub:OWNER/NAME` "
        "restores the stack: any one edit can still be reverted. An edit made with your photo "
        "as a sample publishes the photo's latent, from which anyone can render its "
        "projection. "
    )
    if ON_SPACE:
        return what + "Sign in first; the upload uses your account."
    if publishing_allowed():
        return what + "Uses the token of `HF_TOKEN` or of `hf auth login` on this machine."
    return (
        "**Publishing is off.** Outside a Space it would upload with this server's own Hub "
        "token for any visitor, so only whoever runs the server can allow it (the README "
        "says how)."
    )


def hub_token(oauth: gr.OAuthToken | None) -> str | None:
    """Whose token publishes: the signed-in visitor's on a Space, the local one otherwise.

    On a Space the environment's token belongs to the Space's owner, so it is never used for a
    visitor's upload; elsewhere the local token is used only where publishing was allowed at
    start. The token is passed on to the Hub client and never shown or stored.
    """
    if not publishing_allowed():
        raise RewritingError(PUBLISH_OFF)
    if ON_SPACE:
        if oauth is None:
            raise RewritingError("sign in with Hugging Face (the button above) to publish")
        return oauth.token
    return os.environ.get("HF_TOKEN") or get_token()
