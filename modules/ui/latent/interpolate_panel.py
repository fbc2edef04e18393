"""Interpolate: frames between two latents (lerp or slerp) as a strip, a GIF and an MP4. The ends start
at the encodings of two data-set pictures, so the first strip a user sees is of clear pictures."""
from __future__ import annotations

import gradio as gr

from modules.capabilities import latent
from modules.capabilities.latent.media import mp4_available
from modules.capabilities.latent.request import METHODS
from modules.errors import UserError
from modules.ui.common import info_html
from modules.ui.components import Slider
from modules.ui.errors import user_errors
from modules.ui.latent.common import latent_text, run_job
from modules.ui.latent.sliders import BetaVaeView

ENDS = (1, 2)  # data-set pictures A and B start at (the view opens on #0)


class InterpolatePanel:
    def __init__(self, view: BetaVaeView):
        self.view = view

    def build(self) -> None:
        start, end = ("", "")
        if self.view.first is not None:
            try:
                start, end = self.ends(self.view.model.value)
            except UserError:  # the model's trouble shows on first use
                pass
        with gr.Row():
            with gr.Column():
                with gr.Row(equal_height=True):
                    self.start = gr.Textbox(start, label="Start latent A", lines=1, elem_id="latent_start", scale=4)
                    self.set_start = gr.Button("A ← current", size="sm", elem_id="latent_set_start", scale=1)
                with gr.Row(equal_height=True):
                    self.end = gr.Textbox(end, label="End latent B", lines=1, elem_id="latent_end", scale=4)
                    self.set_end = gr.Button("B ← current", size="sm", elem_id="latent_set_end", scale=1)
                with gr.Row():
                    self.frames = Slider(2, 60, value=16, step=1, label="Frames", elem_id="latent_frames")
                    self.method = gr.Radio(list(METHODS), value="slerp", label="Method", elem_id="latent_method")
                    self.fps = Slider(1, 30, value=12, step=1, label="Frames per second", elem_id="latent_fps")
                self.run = gr.Button("Interpolate", variant="primary", elem_id="latent_interpolate")
            with gr.Column():
                self.strip = gr.Image(label="Frames", type="pil", format="png", interactive=False,
                                      elem_id="latent_strip")
                note = "" if mp4_available() else " (MP4: no ffmpeg binary found, so GIF only)"
                self.animations = gr.File(label="GIF and MP4" + note, file_count="multiple", interactive=False,
                                          elem_id="latent_animations")
                self.message = gr.HTML(label="message", show_label=False, elem_id="latent_interpolate_message")

    def ends(self, model, http: gr.Request | None = None) -> tuple[str, str]:
        """Latents A and B: the encodings of data-set pictures ENDS."""
        picked = [run_job(self.view.backend, latent.DATASET, latent.DataSetLatentRequest(model or None, i), http)
                  for i in ENDS]
        return latent_text(picked[0].latent), latent_text(picked[1].latent)

    def on_model(self, model, http: gr.Request | None) -> dict:
        start, end = self.ends(model, http)
        return {self.start: start, self.end: end, self.strip: None, self.animations: None, self.message: ""}

    def wire(self) -> None:
        self.set_start.click(lambda text: text, inputs=self.view.latent, outputs=self.start, api_name=False,
                             queue=False)
        self.set_end.click(lambda text: text, inputs=self.view.latent, outputs=self.end, api_name=False, queue=False)
        self.run.click(self.interpolate, inputs=[self.view.model, self.start, self.end, self.frames, self.method,
                                                 self.fps],
                       outputs=[self.strip, self.animations, self.message], api_name="latent_interpolate")

    @user_errors
    def interpolate(self, model, start, end, frames, method, fps, http: gr.Request = None):
        """latent_interpolate: (model, start, end, frames, method, fps) -> (strip image, [GIF, MP4] files, message)."""
        request = latent.LatentInterpolateRequest(model or None, start, end, frames, method, fps)
        result = run_job(self.view.backend, latent.INTERPOLATE, request, http)
        files = [str(p) for p in (result.gif, result.mp4) if p is not None]
        note = "" if result.mp4 else info_html("GIF only: no ffmpeg binary found for MP4.")
        return {self.strip: result.strip, self.animations: files, self.message: note}
