"""β-VAE mode's main view: the model picker, a slider per latent dimension and the decoded picture,
with Decode, Reset, Randomize and Save PNG. The tools below it (encode, interpolate, traverse, map,
import/export) are panels of their own that read and set this view's latent."""
from __future__ import annotations

import gradio as gr
import numpy as np

from modules.capabilities import latent
from modules.capabilities.latent import models
from modules.capabilities.latent.request import parse_latent
from modules.errors import UserError
from modules.public_paths import shown
from modules.ui.common import info_html
from modules.ui.components import Slider
from modules.ui.errors import user_errors
from modules.ui.latent.common import LIVE, latent_text, run_job

MAX_SLIDERS = 32
SLIDER_RANGE = 3.0


def no_model_message(backend) -> str:
    folder = shown(backend.config.models_dir / "Latent")
    return (f"**No β-VAE yet.** Put a β-VAE `.safetensors` file (trained with `python -m modules.zoo.train.beta_vae`) "
            f"into `{folder}`, then press ↻.")


def dim_choices(labels: list[str]) -> list[tuple[str, int]]:
    return [(label, d) for d, label in enumerate(labels)]


class BetaVaeView:
    def __init__(self, backend):
        self.backend = backend

    def build(self) -> None:
        titles = models.beta_vae_titles(self.backend)
        title = models.default_title(self.backend)
        self.first = self._first_picture(title) if title else None
        labels = self.first.labels if self.first else []
        with gr.Row(equal_height=True):
            self.model = gr.Dropdown(titles, value=title, label="β-VAE (models/Latent)",
                                     elem_id="latent_model", scale=6, allow_custom_value=True)
            self.refresh = gr.Button("↻", elem_id="latent_refresh", scale=0, min_width=48)
        self.notice = gr.Markdown("" if titles else no_model_message(self.backend), elem_id="latent_notice")
        with gr.Row():
            with gr.Column(scale=3, elem_id="latent_sliders"):
                self.sliders = [
                    Slider(-_bound(self.first, d), _bound(self.first, d), value=_slider_value(self.first, d), step=0.01,
                           label=labels[d] if d < len(labels) else f"z{d}", visible=d < len(labels),
                           elem_id=f"latent_z{d}")
                    for d in range(MAX_SLIDERS)]
                with gr.Row(equal_height=True):
                    self.reset = gr.Button("Reset", elem_id="latent_reset", size="sm")
                    self.randomize = gr.Button("Randomize", elem_id="latent_randomize", size="sm")
                    self.seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)", elem_id="latent_seed",
                                          min_width=120)
            with gr.Column(scale=2):
                self.image = gr.Image(self.first.image if self.first else None, label="Decoded", type="pil",
                                      format="png", interactive=False, height=288, elem_id="latent_image")
                self.message = gr.HTML(label="message", show_label=False, elem_id="latent_message")
                self.latent = gr.Textbox(latent_text(self.first.latent) if self.first else "",
                                         label="Latent z (σ units, JSON)", lines=2, elem_id="latent_vector",
                                         buttons=["copy"])
                self.sigma = gr.Textbox("", label="σ per dimension (posterior, after Encode)", lines=1,
                                        interactive=False, elem_id="latent_sigma")
                with gr.Row():
                    self.decode = gr.Button("Decode", elem_id="latent_decode", size="sm")
                    self.save = gr.Button("Save PNG", elem_id="latent_save", size="sm")
                self.saved = gr.File(label="Saved PNG (carries the latent; drop it into Encode or Import)",
                                     visible=False, elem_id="latent_saved")

    def _first_picture(self, title: str):
        """Data-set image #0, encoded and decoded: a clear picture to start from (a random latent decodes
        to a murky blob). None when the model cannot be used; the message shows on first use."""
        try:
            return self.backend.runner.run(latent.DATASET, latent.DataSetLatentRequest(title, 0))
        except UserError:
            return None

    # ---------------------------------------------------------------- what other panels use

    def slider_updates(self, labels: list[str], values, sigma=None) -> dict:
        """Each slider set to a value (and σ as its note), labelled for its dimension; the rest hidden."""
        updates = {}
        for d, slider in enumerate(self.sliders):
            if d >= len(labels):
                updates[slider] = gr.Slider(visible=False)
                continue
            value = round(float(values[d]), 4)
            bound = _range(value)
            info = f"σ = {sigma[d]:.3f}" if sigma is not None and sigma[d] > 0 else None
            updates[slider] = gr.Slider(value=value, minimum=-bound, maximum=bound, label=labels[d], visible=True,
                                        info=info)
        return updates

    def shown(self, result, message: str = "", sigma=None) -> dict:
        """A decoded latent everywhere this view shows one: sliders, picture, text, message."""
        extra = "" if len(result.labels) <= MAX_SLIDERS else (
            f" Sliders show the first {MAX_SLIDERS} of {len(result.labels)} dimensions; the latent text holds all.")
        text = (message + extra).strip()
        return {**self.slider_updates(result.labels, result.latent, sigma), self.image: result.image,
                self.latent: latent_text(result.latent), self.message: info_html(text) if text else "",
                self.sigma: latent_text(sigma) if sigma is not None else ""}

    @property
    def shown_outputs(self) -> list:
        return [*self.sliders, self.image, self.latent, self.message, self.sigma]

    # ---------------------------------------------------------------- wiring

    def wire(self) -> None:
        gr.on([s.input for s in self.sliders], self.live_decode, inputs=[self.model, self.latent, *self.sliders],
              outputs=[self.image, self.latent, self.message], concurrency_id="latent_live", **LIVE)
        self.decode.click(self.decode_latent, inputs=[self.model, self.latent],
                          outputs=[self.image, self.message, *self.sliders, self.latent],
                          api_name="latent_decode", concurrency_limit=1, concurrency_id="latent_live",
                          show_progress="hidden")
        self.reset.click(self.zeros, inputs=[self.model, self.latent], outputs=self.shown_outputs, api_name=False)
        self.randomize.click(self.random, inputs=[self.model, self.seed], outputs=self.shown_outputs, api_name=False)
        self.save.click(self.save_png, inputs=[self.model, self.latent], outputs=[self.saved, self.message],
                        api_name=False)

    def _decode(self, model, value, http, save: bool = False):
        return run_job(self.backend, latent.DECODE, latent.LatentDecodeRequest(model or None, value, save), http)

    @user_errors
    def live_decode(self, http: gr.Request, model, text, *values):
        """The slider values over the latent text (which carries the dimensions past the sliders).
        (The request comes first: gradio passes it only before the *values.)"""
        current = parse_latent(text, "latent").copy()
        n = min(len(current), MAX_SLIDERS, len(values))
        current[:n] = [0.0 if v is None else float(v) for v in values[:n]]
        result = self._decode(model, current, http)
        return {self.image: result.image, self.latent: latent_text(result.latent), self.message: ""}

    @user_errors
    def decode_latent(self, model, text, http: gr.Request = None):
        """latent_decode: (model, latent as JSON list) -> (image with the latent in its PNG text, message, …)."""
        shown = self.shown(self._decode(model, text, http))
        shown.pop(self.sigma)  # σ of the last encoding stays beside the μ it belongs to
        return shown

    @user_errors
    def zeros(self, model, text, http: gr.Request = None):
        return self.shown(self._decode(model, np.zeros(len(parse_latent(text, "latent"))), http))

    @user_errors
    def random(self, model, seed, http: gr.Request = None):
        request = latent.RandomLatentRequest(-1 if seed is None else seed, 1.0, model)
        result = run_job(self.backend, latent.RANDOM, request, http)
        # The seed box keeps -1 (a new draw per click); the message says which seed this one was.
        return self.shown(result, f"Random latent from seed {result.seed}: near the encoding of a data-set picture.")

    @user_errors
    def save_png(self, model, text, http: gr.Request = None):
        result = self._decode(model, text, http, save=True)
        if result.path is None:
            return {self.message: info_html("Not saved: this server keeps no outputs folder.")}
        return {self.saved: gr.File(value=str(result.path), visible=True),
                self.message: info_html(f"Saved {result.path.name}")}


def _slider_value(first, d: int) -> float:
    return round(float(first.latent[d]), 4) if first is not None and d < len(first.latent) else 0.0


def _range(value: float) -> float:
    """A slider reaches ±3σ, or further where its value lies further out."""
    return max(SLIDER_RANGE, float(np.ceil(abs(value))))


def _bound(first, d: int) -> float:
    return _range(_slider_value(first, d))
