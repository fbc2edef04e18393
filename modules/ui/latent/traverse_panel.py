"""Traverse: a grid with a row per chosen dimension, each moved over [−kσ, kσ] from the current latent."""
from __future__ import annotations

import gradio as gr

from modules.capabilities import latent
from modules.ui.components import Slider
from modules.ui.errors import user_errors
from modules.ui.latent.common import run_job
from modules.ui.latent.sliders import BetaVaeView, dim_choices


class TraversePanel:
    def __init__(self, view: BetaVaeView):
        self.view = view

    def build(self) -> None:
        labels = self.view.first.labels if self.view.first else []
        with gr.Row():
            with gr.Column(scale=1):
                self.dims = gr.CheckboxGroup(dim_choices(labels), label="Dimensions (none: all)",
                                             elem_id="latent_traverse_dims")
                self.k = Slider(0.5, 6, value=3, step=0.5, label="k (values in [−kσ, kσ])", elem_id="latent_traverse_k")
                self.steps = Slider(2, 15, value=7, step=1, label="Values per dimension",
                                    elem_id="latent_traverse_steps")
                self.run = gr.Button("Traverse", variant="primary", elem_id="latent_traverse")
            with gr.Column(scale=2):
                self.grid = gr.Image(label="Dimensions × values", show_label=False, type="pil", format="png",
                                     interactive=False, elem_id="latent_traverse_grid")
                self.message = gr.HTML(label="message", show_label=False, elem_id="latent_traverse_message")

    def on_model(self, labels: list[str]) -> dict:
        return {self.dims: gr.CheckboxGroup(choices=dim_choices(labels), value=[]), self.grid: None}

    def wire(self) -> None:
        self.run.click(self.traverse, inputs=[self.view.model, self.view.latent, self.dims, self.k, self.steps],
                       outputs=[self.grid, self.message], api_name="latent_traverse")

    @user_errors
    def traverse(self, model, current, dims, k, steps, http: gr.Request = None):
        request = latent.LatentTraverseRequest(model or None, current, dims, k, steps)
        return {self.grid: run_job(self.view.backend, latent.TRAVERSE, request, http), self.message: ""}
