"""β-VAE mode: the sliders view with its tools in tabs below, and what changes when another model is
picked (every panel starts again from that model's first data-set picture)."""
from __future__ import annotations

import gradio as gr

from modules.capabilities import latent
from modules.capabilities.latent import models
from modules.ui.errors import user_errors
from modules.ui.latent.common import run_job
from modules.ui.latent.encode_panel import EncodePanel
from modules.ui.latent.interpolate_panel import InterpolatePanel
from modules.ui.latent.io_panel import ImportExportPanel
from modules.ui.latent.map_panel import MapPanel
from modules.ui.latent.sliders import BetaVaeView, no_model_message
from modules.ui.latent.traverse_panel import TraversePanel


class BetaVaeMode:
    def __init__(self, backend):
        self.backend = backend
        self.view = BetaVaeView(backend)
        self.encode = EncodePanel(self.view)
        self.interpolate = InterpolatePanel(self.view)
        self.traverse = TraversePanel(self.view)
        self.map = MapPanel(self.view)
        self.io = ImportExportPanel(self.view)

    def build(self) -> None:
        self.view.build()
        with gr.Tabs():
            for title, tab_id, panel in (("Encode", "latent_encode_tab", self.encode),
                                         ("Interpolate", "latent_interpolate_tab", self.interpolate),
                                         ("Traverse", "latent_traverse_tab", self.traverse),
                                         ("Map", "latent_map_tab", self.map),
                                         ("Import / export", "latent_io_tab", self.io)):
                with gr.Tab(title, id=tab_id):
                    panel.build()
        self.wire()

    def wire(self) -> None:
        for part in (self.view, self.encode, self.interpolate, self.traverse, self.map, self.io):
            part.wire()
        view = self.view
        outputs = [*view.shown_outputs, view.notice, self.traverse.dims, self.traverse.grid, self.map.dim_x,
                   self.map.dim_y, self.map.manifold, self.map.scatter, self.interpolate.start, self.interpolate.end,
                   self.interpolate.strip, self.interpolate.animations, self.interpolate.message,
                   self.encode.encoder_input, self.encode.reconstruction]
        view.model.input(self.on_model, inputs=view.model, outputs=outputs, api_name=False)
        view.refresh.click(self.on_refresh, inputs=view.model, outputs=[view.model, *outputs], api_name=False)

    @user_errors
    def on_model(self, model, http: gr.Request = None):
        return self._model_updates(model, http)

    def _model_updates(self, model, http) -> dict:
        first = run_job(self.backend, latent.DATASET, latent.DataSetLatentRequest(model or None, 0), http)
        return {**self.view.shown(first, "Data-set picture #0, encoded: move a slider to change it."),
                self.view.notice: "", **self.traverse.on_model(first.labels), **self.map.on_model(first.labels),
                **self.interpolate.on_model(model, http), self.encode.encoder_input: None,
                self.encode.reconstruction: None}

    @user_errors
    def on_refresh(self, current, http: gr.Request = None):
        titles = models.refreshed_titles(self.backend)
        if not titles:
            return {self.view.model: gr.Dropdown(choices=[], value=None),
                    self.view.notice: no_model_message(self.backend)}
        value = current if current in titles else titles[0]
        return {self.view.model: gr.Dropdown(choices=titles, value=value), **self._model_updates(value, http)}
