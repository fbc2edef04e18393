"""SD VAE mode: an image encoded by a Stable Diffusion VAE (a checkpoint's, or a file of models/VAE), then
edited live: offset and scale per latent channel, and principal directions of encoded images."""
from __future__ import annotations

import gradio as gr

from modules.capabilities import latent
from modules.capabilities.latent import models
from modules.capabilities.latent.sd_request import SdVaeEdit
from modules.capabilities.latent.sd_vae import MAX_CHANNELS, MAX_DIRECTIONS
from modules.errors import InvalidRequest
from modules.ui.common import info_html
from modules.ui.components import ImageFile, Slider
from modules.ui.errors import user_errors
from modules.ui.latent.common import LIVE, run_job


class SdVaePanel:
    def __init__(self, backend):
        self.backend = backend

    def build(self) -> None:
        choices = models.sd_vae_choices(self.backend)
        with gr.Row(equal_height=True):
            self.vae = gr.Dropdown(choices, value=choices[0] if choices else None, allow_custom_value=True,
                                   label="SD VAE (a checkpoint's, or a file in models/VAE)", elem_id="latent_sd_vae",
                                   scale=6)
            self.refresh = gr.Button("↻", elem_id="latent_sd_refresh", scale=0, min_width=48)
            self.size = Slider(64, 1024, value=256, step=64, label="Working size (px)", elem_id="latent_sd_size",
                               scale=2)
        self.state = gr.State(None)             # the encoded latent (sd_vae.SdVaeLatent)
        self.directions_state = gr.State(None)  # its principal directions (sd_vae.Directions)
        with gr.Row():
            with gr.Column():
                self.upload = ImageFile(label="Image", type="filepath", sources=["upload", "clipboard"], height=256,
                                        image_mode=None, elem_id="latent_sd_image")
                self.encode = gr.Button("Encode", variant="primary", elem_id="latent_sd_encode")
                gr.Markdown("**Channels** — offset in σ of the channel, scale around its mean")
                self.offsets, self.scales, self.channel_rows = [], [], []
                for c in range(MAX_CHANNELS):
                    with gr.Row(visible=c < 4) as row:
                        self.offsets.append(Slider(-3, 3, value=0, step=0.05, label=f"channel {c} offset",
                                                   elem_id=f"latent_sd_offset{c}"))
                        self.scales.append(Slider(0, 3, value=1, step=0.05, label=f"channel {c} scale",
                                                  elem_id=f"latent_sd_scale{c}"))
                    self.channel_rows.append(row)
                gr.Markdown("**Principal directions** of encoded images (Shapes images, or your own)")
                with gr.Row():
                    self.direction_files = gr.File(label="Direction images (optional, 3 or more)", file_count="multiple",
                                                   type="filepath", file_types=["image"],
                                                   elem_id="latent_sd_direction_files")
                    with gr.Column():
                        self.direction_count = Slider(3, 64, value=16, step=1, label="Shapes images",
                                                      elem_id="latent_sd_direction_count")
                        self.n_directions = Slider(1, MAX_DIRECTIONS, value=4, step=1, label="Directions",
                                                   elem_id="latent_sd_n_directions")
                self.compute = gr.Button("Compute directions", elem_id="latent_sd_compute")
                self.directions = [Slider(-3, 3, value=0, step=0.05, label=f"PC{k + 1}", visible=False,
                                          elem_id=f"latent_sd_pc{k}") for k in range(MAX_DIRECTIONS)]
                self.reset = gr.Button("Reset edits", size="sm", elem_id="latent_sd_reset")
            with gr.Column():
                self.image = gr.Image(label="Decoded", type="pil", format="png", interactive=False, height=320,
                                      elem_id="latent_sd_decoded")
                self.message = gr.HTML(elem_id="latent_sd_message")
                self.channels = gr.Gallery(label="Latent channels (blue −3σ … red +3σ)", columns=4, height=260,
                                           elem_id="latent_sd_channels", interactive=False)
        self.wire()

    @property
    def edit_sliders(self) -> list:
        return [*self.offsets, *self.scales, *self.directions]

    def wire(self) -> None:
        self.refresh.click(lambda v: gr.Dropdown(choices=models.sd_vae_choices(self.backend), value=v),
                           inputs=self.vae, outputs=self.vae, api_name=False)
        self.encode.click(self.encode_image, inputs=[self.vae, self.upload, self.size],
                          outputs=[self.state, self.directions_state, self.image, self.channels, self.message,
                                   *self.channel_rows, *self.edit_sliders], api_name=False)
        gr.on([s.input for s in self.edit_sliders], self.decode,
              inputs=[self.state, self.directions_state, *self.edit_sliders],
              outputs=[self.image, self.channels, self.message], concurrency_id="latent_sd_live", **LIVE)
        self.compute.click(self.compute_directions, inputs=[self.state, self.direction_files, self.direction_count,
                                                            self.n_directions],
                           outputs=[self.directions_state, *self.directions, self.message], api_name=False)
        self.reset.click(self.reset_edits, inputs=[self.state, self.directions_state],
                         outputs=[*self.edit_sliders, self.image, self.channels, self.message], api_name=False)

    def _unedited(self) -> dict:
        return {**{s: gr.Slider(value=0) for s in self.offsets}, **{s: gr.Slider(value=1) for s in self.scales},
                **{s: gr.Slider(value=0) for s in self.directions}}

    @user_errors
    def encode_image(self, vae_source, image, size, http: gr.Request = None):
        result = run_job(self.backend, latent.SD_ENCODE, latent.SdVaeEncodeRequest(vae_source, image, size), http)
        current = result.current
        channels, height, width = current.latent.shape
        return {self.state: current, self.directions_state: None, self.image: result.image,
                self.channels: result.channels,
                self.message: info_html(f"Latent {channels}×{height}×{width} of a {current.input_image.width} px image"),
                **{row: gr.Row(visible=c < channels) for c, row in enumerate(self.channel_rows)},
                **self._unedited(), **{s: gr.Slider(value=0, visible=False) for s in self.directions}}

    @user_errors
    def decode(self, http: gr.Request, current, directions, *values):  # the request before *values
        if current is None:
            raise InvalidRequest("image", "encode an image first")
        n, channels = MAX_CHANNELS, len(current.latent)
        count = len(directions.stds) if directions is not None else 0
        edit = SdVaeEdit(list(values[:channels]), list(values[n:n + channels]), list(values[2 * n:2 * n + count]))
        result = run_job(self.backend, latent.SD_DECODE, latent.SdVaeDecodeRequest(current, edit, directions), http)
        return {self.image: result.image, self.channels: result.channels, self.message: ""}

    @user_errors
    def compute_directions(self, current, files, count, n_directions, http: gr.Request = None):
        if current is None:
            raise InvalidRequest("image", "encode an image first")
        request = latent.SdVaeDirectionsRequest(current.vae, files, count, n_directions, current.input_image.width)
        directions = run_job(self.backend, latent.SD_DIRECTIONS, request, http)
        found = len(directions.stds)
        source = "your images" if files else "Shapes images"
        return {self.directions_state: directions,
                **{s: gr.Slider(value=0, visible=i < found,
                                label=f"PC{i + 1} ({directions.explained[i]:.0%} of variance)" if i < found
                                else f"PC{i + 1}") for i, s in enumerate(self.directions)},
                self.message: info_html(f"{found} directions from {directions.images} {source}")}

    @user_errors
    def reset_edits(self, current, directions, http: gr.Request = None):
        if current is None:
            return self._unedited()
        result = run_job(self.backend, latent.SD_DECODE, latent.SdVaeDecodeRequest(current, SdVaeEdit(), directions),
                         http)
        return {**self._unedited(), self.image: result.image, self.channels: result.channels, self.message: ""}
