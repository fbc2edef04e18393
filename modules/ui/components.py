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


class ImageFile(gr.Image):
    """An image upload handed over as the uploaded file's path, unopened, in its own mode: our request
    type reads it, so an unreadable file gets our message naming the field, and a PNG keeps its text."""

    def get_block_name(self) -> str:
        return "image"  # the stock image frontend

    def preprocess(self, payload):
        if payload is None or (payload.url and payload.url.startswith("data:")):
            return super().preprocess(payload)
        return str(payload.path)
