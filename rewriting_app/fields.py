"""Number fields whose values out of range reach the handler, which answers them in words."""

import gradio as gr


class WordedSlider(gr.Slider):
    """A slider whose typed value outside its range goes to the handler as it is, to be
    refused there in the visitor's words: Gradio's own check would refuse the whole event
    with a red "Error" (and a warning from here would never reach the page)."""

    #: Drawn by Gradio's own slider in the page.
    is_template = True

    def preprocess(self, payload: float) -> float:
        """The value, rounded as the slider's step says, unchecked."""
        return gr.Number.round_to_precision(payload, self.precision)
