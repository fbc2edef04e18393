"""Gradio components adjusted for this app."""
from __future__ import annotations

import gradio as gr


class Slider(gr.Slider):
    """A slider whose value is checked by our request validation, not by gradio.

    Gradio's own bounds check answers "Value 0 is less than minimum value 1." without saying which
    field; the request types name the field and say what to do, in the UI and in the API alike."""

    def preprocess(self, payload: float | None) -> float | None:
        if payload is None:
            return None
        return gr.Number.round_to_precision(payload, self.precision)
