"""Import / export: the current latent as a .json or .npy file (with the model's name and hash), and
back; a PNG saved here imports too. An import made with another β-VAE that is here switches to it."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import gradio as gr

from modules.capabilities import latent
from modules.capabilities.latent import models, state as latent_state
from modules.ui.errors import user_errors
from modules.ui.latent.common import run_job
from modules.ui.latent.sliders import BetaVaeView


class ImportExportPanel:
    def __init__(self, view: BetaVaeView):
        self.view = view

    def build(self) -> None:
        with gr.Row():
            with gr.Column():
                self.export_format = gr.Radio(["JSON", ".npy"], value="JSON", label="Export as",
                                              elem_id="latent_export_format")
                self.export = gr.Button("Export latent", elem_id="latent_export")
                self.exported = gr.File(label="Exported latent", interactive=False, elem_id="latent_exported")
            with gr.Column():
                self.import_file = gr.File(label="Import a latent (.json, .npy, or a PNG saved here)", type="filepath",
                                           file_types=[".json", ".npy", ".png"], elem_id="latent_import")
                self.message = gr.HTML(elem_id="latent_io_message")

    def wire(self) -> None:
        view = self.view
        self.export.click(self.export_latent, inputs=[view.model, view.latent, self.export_format],
                          outputs=[self.exported, self.message], api_name=False)
        self.import_file.upload(self.import_latent, inputs=[view.model, self.import_file],
                                outputs=[*view.shown_outputs, view.model, self.message], api_name=False)

    @user_errors
    def export_latent(self, model, text, export_format, http: gr.Request = None):
        # The decoded picture carries the state (latent, model, hash) exactly as a saved PNG would.
        decoded = run_job(self.view.backend, latent.DECODE, latent.LatentDecodeRequest(model or None, text), http)
        state = latent_state.from_png(decoded.image)
        folder = Path(tempfile.mkdtemp(prefix="latent-export-"))
        stem = f"{(state.model or 'latent').replace('/', '_')}-latent"
        if export_format == ".npy":
            path = folder / f"{stem}.npy"
            path.write_bytes(latent_state.to_npy_bytes(state))
        else:
            path = folder / f"{stem}.json"
            path.write_text(json.dumps(state.to_dict(), indent=1))
        return {self.exported: str(path), self.message: ""}

    @user_errors
    def import_latent(self, model, path, http: gr.Request = None):
        if not path:
            return {self.message: ""}
        state = latent_state.load_file(path)
        backend = self.view.backend
        chosen, note = model or None, ""
        if state.model_hash and state.model_hash != models.beta_vae_hash(backend, chosen):
            title = models.title_with_hash(backend, state.model_hash)
            if title is not None:
                chosen, note = title, f"switched to {title}, the model it was made with"
            else:
                note = f"made with {state.model or 'another model'} [{state.model_hash[:10]}], not found here"
        result = run_job(backend, latent.DECODE, latent.LatentDecodeRequest(chosen, state.latent), http)
        text = f"Imported {Path(path).name}" + (f" ({note})" if note else "")
        updates = {**self.view.shown(result, text), self.message: ""}
        if chosen != (model or None):
            updates[self.view.model] = gr.Dropdown(value=chosen)
        return updates
