"""Map: the decoded manifold over two latent dimensions, beside the encoded data set on the same axes,
coloured by one factor of the Shapes data set."""
from __future__ import annotations

import gradio as gr

from modules.capabilities import latent
from modules.capabilities.latent.request import MAP_FACTORS
from modules.ui.components import Slider
from modules.ui.errors import user_errors
from modules.ui.latent.common import run_job
from modules.ui.latent.sliders import BetaVaeView, dim_choices


class MapPanel:
    def __init__(self, view: BetaVaeView):
        self.view = view

    def build(self) -> None:
        choices = dim_choices(self.view.first.labels if self.view.first else [])
        with gr.Row():
            self.dim_x = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="x dimension",
                                     elem_id="latent_map_x")
            self.dim_y = gr.Dropdown(choices, value=choices[1][1] if len(choices) > 1 else None, label="y dimension",
                                     elem_id="latent_map_y")
            self.factor = gr.Dropdown(list(MAP_FACTORS), value="position_x", label="Colour by factor",
                                      elem_id="latent_map_factor")
            self.k = Slider(0.5, 6, value=3, step=0.5, label="k", elem_id="latent_map_k")
            self.steps = Slider(2, 15, value=9, step=1, label="Grid size", elem_id="latent_map_steps")
            self.samples = Slider(50, 2000, value=500, step=50, label="Data-set images", elem_id="latent_map_samples")
        self.run = gr.Button("Map", variant="primary", elem_id="latent_map")
        with gr.Row():
            self.manifold = gr.Image(label="Decoded manifold", show_label=False, type="pil", format="png",
                                     interactive=False, elem_id="latent_manifold")
            self.scatter = gr.Image(label="Encoded data set", show_label=False, type="pil", format="png",
                                    interactive=False, elem_id="latent_scatter")
        self.message = gr.HTML(label="message", show_label=False, elem_id="latent_map_message")

    def on_model(self, labels: list[str]) -> dict:
        choices = dim_choices(labels)
        return {self.dim_x: gr.Dropdown(choices=choices, value=0),
                self.dim_y: gr.Dropdown(choices=choices, value=1 if len(choices) > 1 else 0),
                self.manifold: None, self.scatter: None}

    def wire(self) -> None:
        self.run.click(self.map, inputs=[self.view.model, self.view.latent, self.dim_x, self.dim_y, self.k, self.steps,
                                         self.factor, self.samples],
                       outputs=[self.manifold, self.scatter, self.message], api_name="latent_map")

    @user_errors
    def map(self, model, current, dim_x, dim_y, k, steps, factor, samples, http: gr.Request = None):
        request = latent.LatentMapRequest(model or None, current, dim_x, dim_y, k, steps, factor, samples)
        result = run_job(self.view.backend, latent.MAP, request, http)
        return {self.manifold: result.manifold, self.scatter: result.scatter, self.message: ""}
