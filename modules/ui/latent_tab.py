"""The Latent Explorer tab: layout and wiring only; the work is in modules/generation/latent*.py
and sd_vae_explore.py, on models the backend's manager loads (via generation/latent_models.py).

Live decoding: every slider's ``input`` event runs one decode with ``trigger_mode="always_last"``
(while a decode runs, further moves collapse into one follow-up with the latest values) and
``concurrency_limit=1`` on a shared concurrency id, so stale positions are dropped, not queued."""
from __future__ import annotations

import html
import json
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np

from modules.errors import UserError, shown_message
from modules import owners
from modules.generation import latent as latent_ops
from modules.generation import latent_map, latent_state
from modules.generation import sd_vae_explore as sd_ops
from modules.generation.latent_models import LatentModels
from modules.generation.latent_request import (
    MAP_FACTORS, METHODS, LatentDecodeRequest, LatentEncodeRequest, LatentInterpolateRequest, LatentMapRequest,
    LatentTraverseRequest, RandomLatentRequest, SdVaeDirectionsRequest, SdVaeEdit, SdVaeEncodeRequest, parse_latent)
from modules.generation.latent_media import mp4_available
from modules.job_limits import check_image
from modules.public_paths import shown
from modules.ui.common import error_html, info_html, owner_of
from modules.ui.components import Slider
from modules.zoo import shapes

MAX_SLIDERS = 32
SLIDER_RANGE = 3.0
LIVE = dict(trigger_mode="always_last", concurrency_limit=1, show_progress="hidden", api_name=False)
# Small VAEs decode 32 px images: show them large, with crisp pixels.
STYLE = """<style>
#latent_image img, #latent_reconstruction img, #latent_input img, #latent_sample img
  { width: 100% !important; height: 100% !important; object-fit: contain; image-rendering: pixelated; }
</style>"""


class ImageFile(gr.Image):
    """An image upload handed over as the uploaded file's path, unopened, in its own mode: our request
    type reads it, so an unreadable file gets our message naming the field, and a PNG keeps its text."""

    def get_block_name(self) -> str:
        return "image"  # the stock image frontend

    def preprocess(self, payload):
        if payload is None or (payload.url and payload.url.startswith("data:")):
            return super().preprocess(payload)
        return str(payload.path)


def _message(error: Exception) -> str:
    return error_html(shown_message(error, "the Latent Explorer"))


def _latent_text(latent) -> str:
    return json.dumps([round(float(v), 4) for v in latent])


def _no_model_message(models: LatentModels) -> str:
    folder = shown(models.backend.config.models_dir / "Latent")
    return (f"**No β-VAE yet.** Put a β-VAE `.safetensors` file (trained with `python -m modules.zoo.train.beta_vae`) "
            f"into `{folder}`, then press ↻.")


class BetaVaePanel:
    """Small-VAE mode: a slider per latent dimension and the encode/interpolate/traverse/map tools."""

    def __init__(self, models: LatentModels):
        self.models = models
        self.outdir = Path(models.backend.config.outdir)

    # ---------------------------------------------------------------- layout

    def build(self) -> None:
        titles = self.models.beta_vae_titles()
        first = None
        try:
            first = self.models.beta_vae(self.models.default_title()) if titles else None
        except Exception:  # noqa: BLE001 - a broken file must not stop the app; the message shows on use
            first = None
        dim = first.latent_dim if first else 0
        with gr.Row(equal_height=True):
            self.model = gr.Dropdown(titles, value=first.title if first else None, label="β-VAE (models/Latent)",
                                     elem_id="latent_model", scale=6, allow_custom_value=True)
            self.refresh = gr.Button("↻", elem_id="latent_refresh", scale=0, min_width=48)
        self.notice = gr.Markdown("" if titles else _no_model_message(self.models), elem_id="latent_notice")
        with gr.Row():
            with gr.Column(scale=3, elem_id="latent_sliders"):
                self.sliders = [
                    Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0.0, step=0.01,
                           label=first.dim_label(d) if first and d < dim else f"z{d}",
                           visible=d < dim, elem_id=f"latent_z{d}")
                    for d in range(MAX_SLIDERS)]
                with gr.Row(equal_height=True):
                    self.reset = gr.Button("Reset", elem_id="latent_reset", size="sm")
                    self.randomize = gr.Button("Randomize", elem_id="latent_randomize", size="sm")
                    self.seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)", elem_id="latent_seed",
                                          min_width=120)
            with gr.Column(scale=2):
                self.image = gr.Image(self._initial_image(first), label="Decoded", type="pil", format="png",
                                      interactive=False, height=288, elem_id="latent_image")
                self.message = gr.HTML(label="message", show_label=False, elem_id="latent_message")
                self.latent = gr.Textbox(_latent_text(np.zeros(dim)) if dim else "", label="Latent z (σ units, JSON)",
                                         lines=2, elem_id="latent_vector", buttons=["copy"])
                self.sigma = gr.Textbox("", label="σ per dimension (posterior, after Encode)", lines=1,
                                        interactive=False, elem_id="latent_sigma")
                with gr.Row():
                    self.decode = gr.Button("Decode", elem_id="latent_decode", size="sm")
                    self.save = gr.Button("Save PNG", elem_id="latent_save", size="sm")
                self.saved = gr.File(label="Saved PNG (carries the latent; drop it into Encode or Import)",
                                     visible=False, elem_id="latent_saved")
        with gr.Tabs():
            with gr.Tab("Encode", id="latent_encode_tab"):
                self._build_encode()
            with gr.Tab("Interpolate", id="latent_interpolate_tab"):
                self._build_interpolate()
            with gr.Tab("Traverse", id="latent_traverse_tab"):
                self._build_traverse(first)
            with gr.Tab("Map", id="latent_map_tab"):
                self._build_map(first)
            with gr.Tab("Import / export", id="latent_io_tab"):
                self._build_io()
        self._wire()

    def _initial_image(self, model):
        if model is None:
            return None
        try:
            request = LatentDecodeRequest(None, np.zeros(model.latent_dim)).validated(model.latent_dim)
            return latent_ops.decode(request, model).image
        except Exception:  # noqa: BLE001
            return None

    def _build_encode(self) -> None:
        with gr.Row():
            with gr.Column():
                with gr.Tabs():
                    with gr.Tab("Upload"):
                        self.upload = ImageFile(label="Image (a PNG saved here restores its latent)", type="filepath",
                                               image_mode=None,
                                               sources=["upload", "clipboard"], height=220, elem_id="latent_upload")
                        self.encode_upload = gr.Button("Encode", variant="primary", elem_id="latent_encode_upload")
                    with gr.Tab("Draw"):
                        self.sketch = gr.Sketchpad(label="Draw a shape (pick the brush first)", type="pil", canvas_size=(256, 256),
                                                   layers=False, format="png",
                                                   brush=gr.Brush(colors=[c for c in _hex_colours()],
                                                                  default_color=_hex_colours()[0], default_size=18),
                                                   elem_id="latent_sketch")
                        self.encode_sketch = gr.Button("Encode drawing", variant="primary", elem_id="latent_encode_sketch")
                    with gr.Tab("Data set"):
                        with gr.Row():
                            self.sample_seed = gr.Number(value=0, precision=0, label="Shapes sample #",
                                                         elem_id="latent_sample_seed", minimum=0)
                            self.sample = gr.Image(_sample(0)[0], label="Sample", type="numpy", interactive=False,
                                                   height=128, elem_id="latent_sample")
                        self.sample_caption = gr.Markdown(_sample(0)[1], elem_id="latent_sample_caption")
                        self.encode_sample = gr.Button("Encode sample", variant="primary", elem_id="latent_encode_sample")
            with gr.Column():
                with gr.Row():
                    self.encoder_input = gr.Image(label="What the encoder saw", type="pil", format="png", interactive=False,
                                                  height=160, elem_id="latent_input")
                    self.reconstruction = gr.Image(label="Decoded μ", type="pil", format="png", interactive=False,
                                                   height=160, elem_id="latent_reconstruction")
                gr.Markdown("Encoding sets the sliders to μ; each slider's note shows σ of that dimension. "
                            "Colour images of any size are converted to RGB and resized to the model's size.")

    def _build_interpolate(self) -> None:
        with gr.Row():
            with gr.Column():
                with gr.Row(equal_height=True):
                    self.start = gr.Textbox(label="Start latent A", lines=1, elem_id="latent_start", scale=4)
                    self.set_start = gr.Button("A ← current", size="sm", elem_id="latent_set_start", scale=1)
                with gr.Row(equal_height=True):
                    self.end = gr.Textbox(label="End latent B", lines=1, elem_id="latent_end", scale=4)
                    self.set_end = gr.Button("B ← current", size="sm", elem_id="latent_set_end", scale=1)
                with gr.Row():
                    self.frames = Slider(2, 60, value=16, step=1, label="Frames", elem_id="latent_frames")
                    self.method = gr.Radio(list(METHODS), value="slerp", label="Method", elem_id="latent_method")
                    self.fps = Slider(1, 30, value=12, step=1, label="Frames per second", elem_id="latent_fps")
                self.run_interpolate = gr.Button("Interpolate", variant="primary", elem_id="latent_interpolate")
            with gr.Column():
                self.strip = gr.Image(label="Frames", type="pil", format="png", interactive=False,
                                      elem_id="latent_strip")
                note = "" if mp4_available() else " (MP4: no ffmpeg binary found, so GIF only)"
                self.animations = gr.File(label="GIF and MP4" + note, file_count="multiple", interactive=False,
                                          elem_id="latent_animations")
                self.interpolate_message = gr.HTML(label="message", show_label=False, elem_id="latent_interpolate_message")

    def _build_traverse(self, model) -> None:
        with gr.Row():
            with gr.Column(scale=1):
                self.traverse_dims = gr.CheckboxGroup(self._dim_choices(model), label="Dimensions (none: all)",
                                                      elem_id="latent_traverse_dims")
                self.traverse_k = Slider(0.5, 6, value=3, step=0.5, label="k (values in [−kσ, kσ])",
                                         elem_id="latent_traverse_k")
                self.traverse_steps = Slider(2, 15, value=7, step=1, label="Values per dimension",
                                             elem_id="latent_traverse_steps")
                self.run_traverse = gr.Button("Traverse", variant="primary", elem_id="latent_traverse")
            with gr.Column(scale=2):
                self.traverse_grid = gr.Image(label="Dimensions × values", show_label=False, type="pil", format="png",
                                              interactive=False, elem_id="latent_traverse_grid")
                self.traverse_message = gr.HTML(label="message", show_label=False, elem_id="latent_traverse_message")

    def _build_map(self, model) -> None:
        choices = self._dim_choices(model)
        with gr.Row():
            self.map_x = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="x dimension",
                                     elem_id="latent_map_x")
            self.map_y = gr.Dropdown(choices, value=choices[1][1] if len(choices) > 1 else None, label="y dimension",
                                     elem_id="latent_map_y")
            self.map_factor = gr.Dropdown(list(MAP_FACTORS), value="position_x", label="Colour by factor",
                                          elem_id="latent_map_factor")
            self.map_k = Slider(0.5, 6, value=3, step=0.5, label="k", elem_id="latent_map_k")
            self.map_steps = Slider(2, 15, value=9, step=1, label="Grid size", elem_id="latent_map_steps")
            self.map_samples = Slider(50, 2000, value=500, step=50, label="Data-set images", elem_id="latent_map_samples")
        self.run_map = gr.Button("Map", variant="primary", elem_id="latent_map")
        with gr.Row():
            self.manifold = gr.Image(label="Decoded manifold", show_label=False, type="pil",
                                     format="png", interactive=False, elem_id="latent_manifold")
            self.scatter = gr.Image(label="Encoded data set", show_label=False, type="pil", format="png", interactive=False,
                                    elem_id="latent_scatter")
        self.map_message = gr.HTML(label="message", show_label=False, elem_id="latent_map_message")

    def _build_io(self) -> None:
        with gr.Row():
            with gr.Column():
                self.export_format = gr.Radio(["JSON", ".npy"], value="JSON", label="Export as", elem_id="latent_export_format")
                self.export = gr.Button("Export latent", elem_id="latent_export")
                self.exported = gr.File(label="Exported latent", interactive=False, elem_id="latent_exported")
            with gr.Column():
                self.import_file = gr.File(label="Import a latent (.json, .npy, or a PNG saved here)", type="filepath",
                                           file_types=[".json", ".npy", ".png"], elem_id="latent_import")
                self.io_message = gr.HTML(elem_id="latent_io_message")

    @staticmethod
    def _dim_choices(model) -> list[tuple[str, int]]:
        return [(model.dim_label(d), d) for d in range(model.latent_dim)] if model else []

    # ---------------------------------------------------------------- wiring

    def _wire(self) -> None:
        sliders, model = self.sliders, self.model
        live_outputs = [self.image, self.latent, self.message]
        gr.on([s.input for s in sliders], self._live_decode, inputs=[model, self.latent, *sliders],
              outputs=live_outputs, concurrency_id="latent_live", **LIVE)
        self.decode.click(self._decode_api, inputs=[model, self.latent], outputs=[self.image, self.message],
                          api_name="latent_decode", concurrency_limit=1, concurrency_id="latent_live",
                          show_progress="hidden").then(
            self._show_latent, inputs=[model, self.latent, self.sigma], outputs=[*sliders, self.message], api_name=False)
        model_outputs = [*sliders, self.image, self.latent, self.sigma, self.message, self.traverse_dims,
                         self.map_x, self.map_y, self.notice]
        model.input(self._on_model, inputs=model, outputs=model_outputs, api_name=False)
        self.refresh.click(self._on_refresh, inputs=model, outputs=[model, *model_outputs], api_name=False)
        self.reset.click(self._on_reset, inputs=model, outputs=[*sliders, *live_outputs, self.sigma], api_name=False)
        self.randomize.click(self._on_randomize, inputs=[model, self.seed],
                             outputs=[*sliders, *live_outputs, self.sigma], api_name=False)
        self.save.click(self._on_save, inputs=[model, self.latent], outputs=[self.saved, self.message], api_name=False)

        encode_outputs = [self.latent, self.sigma, self.reconstruction, self.message, model, self.encoder_input]
        show = dict(fn=self._show_latent, inputs=[model, self.latent, self.sigma], outputs=[*sliders, self.message],
                    api_name=False)
        self.encode_upload.click(self._encode_api, inputs=[model, self.upload], outputs=encode_outputs,
                                 api_name="latent_encode").then(**show).then(
            self._decode_api, inputs=[model, self.latent], outputs=[self.image, gr.State()], api_name=False)
        # Dropping an image in encodes it at once (a PNG saved here restores its sliders).
        for event, source in ((self.upload.upload, self.upload), (self.encode_sketch.click, self.sketch),
                              (self.encode_sample.click, self.sample)):
            event(self._encode_api, inputs=[model, source], outputs=encode_outputs, api_name=False).then(
                **show).then(self._decode_api, inputs=[model, self.latent], outputs=[self.image, gr.State()],
                             api_name=False)
        self.sample_seed.change(_sample, inputs=self.sample_seed, outputs=[self.sample, self.sample_caption],
                                api_name=False, show_progress="hidden")

        self.set_start.click(lambda text: text, inputs=self.latent, outputs=self.start, api_name=False, queue=False)
        self.set_end.click(lambda text: text, inputs=self.latent, outputs=self.end, api_name=False, queue=False)
        self.run_interpolate.click(self._interpolate_api,
                                   inputs=[model, self.start, self.end, self.frames, self.method, self.fps],
                                   outputs=[self.strip, self.animations, self.interpolate_message],
                                   api_name="latent_interpolate")
        self.run_traverse.click(self._traverse, inputs=[model, self.latent, self.traverse_dims, self.traverse_k,
                                                        self.traverse_steps],
                                outputs=[self.traverse_grid, self.traverse_message], api_name="latent_traverse")
        self.run_map.click(self._map, inputs=[model, self.latent, self.map_x, self.map_y, self.map_k, self.map_steps,
                                              self.map_factor, self.map_samples],
                           outputs=[self.manifold, self.scatter, self.map_message], api_name="latent_map")
        self.export.click(self._export, inputs=[model, self.latent, self.export_format],
                          outputs=[self.exported, self.io_message], api_name=False)
        self.import_file.upload(self._import, inputs=[model, self.import_file],
                                outputs=[self.latent, self.sigma, self.io_message, model], api_name=False).then(
            **show).then(self._decode_api, inputs=[model, self.latent], outputs=[self.image, gr.State()],
                         api_name=False)

    # ---------------------------------------------------------------- handlers

    def _current(self, model_name, latent_text, values) -> tuple:
        """(model, latent): the slider values over the latent text (which carries dims past the sliders)."""
        model = self.models.beta_vae(model_name or None)
        try:
            latent = parse_latent(latent_text, "latent", model.latent_dim).astype(np.float32)
        except UserError:
            latent = np.zeros(model.latent_dim, np.float32)
        n = min(model.latent_dim, MAX_SLIDERS)
        latent[:n] = [0.0 if v is None else float(v) for v in values[:n]]
        return model, latent

    def _live_decode(self, model_name, latent_text, *values):
        try:
            model, latent = self._current(model_name, latent_text, values)
            request = LatentDecodeRequest(model_name, latent).validated(model.latent_dim)
            result = latent_ops.decode(request, model)
        except Exception as e:  # noqa: BLE001 - shown to the user
            return gr.skip(), gr.skip(), _message(e)
        return result.image, _latent_text(result.state.latent), ""

    def _decode_api(self, model, latent):
        """latent_decode: (model, latent as JSON list) -> (image with the latent in its PNG text, message)."""
        try:
            vae = self.models.beta_vae(model or None)
            request = LatentDecodeRequest(model, latent).validated(vae.latent_dim)
            return latent_ops.decode(request, vae).image, ""
        except Exception as e:  # noqa: BLE001
            return None, _message(e)

    def _slider_updates(self, model, latent=None, sigma=None) -> list:
        latent = np.zeros(model.latent_dim) if latent is None else latent
        updates = []
        for d in range(MAX_SLIDERS):
            if d >= model.latent_dim:
                updates.append(gr.Slider(visible=False))
                continue
            value = round(float(latent[d]), 4)
            bound = max(SLIDER_RANGE, float(np.ceil(abs(value))))
            info = f"σ = {sigma[d]:.3f}" if sigma is not None and sigma[d] > 0 else None
            updates.append(gr.Slider(value=value, minimum=-bound, maximum=bound, label=model.dim_label(d),
                                     visible=True, info=info))
        return updates

    def _show_latent(self, model_name, latent_text, sigma_text):
        """Sliders from the latent text (after encode/import/decode), σ as each slider's note."""
        try:
            model = self.models.beta_vae(model_name or None)
            latent = parse_latent(latent_text, "latent", model.latent_dim)
            sigma = None
            if sigma_text:
                try:
                    sigma = parse_latent(sigma_text, "sigma", model.latent_dim)
                except UserError:
                    sigma = None
            extra = "" if model.latent_dim <= MAX_SLIDERS else info_html(
                f"Sliders show the first {MAX_SLIDERS} of {model.latent_dim} dimensions; the latent text holds all.")
            return [*self._slider_updates(model, latent, sigma), gr.skip() if not extra else extra]
        except Exception as e:  # noqa: BLE001
            return [*(gr.skip() for _ in range(MAX_SLIDERS)), _message(e)]

    def _model_outputs(self, model_name) -> list:
        model = self.models.beta_vae(model_name or None)
        zeros = np.zeros(model.latent_dim, np.float32)
        image = latent_ops.decode(LatentDecodeRequest(model_name, zeros).validated(model.latent_dim), model).image
        choices = self._dim_choices(model)
        return [*self._slider_updates(model), image, _latent_text(zeros), "", "",
                gr.CheckboxGroup(choices=choices, value=[]),
                gr.Dropdown(choices=choices, value=0), gr.Dropdown(choices=choices, value=1 if len(choices) > 1 else 0),
                ""]

    def _on_model(self, model_name):
        try:
            return self._model_outputs(model_name)
        except Exception as e:  # noqa: BLE001
            return [*(gr.skip() for _ in range(MAX_SLIDERS)), gr.skip(), gr.skip(), gr.skip(), _message(e),
                    gr.skip(), gr.skip(), gr.skip(), gr.skip()]

    def _on_refresh(self, current):
        titles = self.models.refresh()
        if not titles:
            return [gr.Dropdown(choices=[], value=None), *(gr.skip() for _ in range(MAX_SLIDERS + 7)),
                    _no_model_message(self.models)]
        value = current if current in titles else titles[0]
        return [gr.Dropdown(choices=titles, value=value), *self._on_model(value)]

    def _on_reset(self, model_name):
        try:
            model = self.models.beta_vae(model_name or None)
            zeros = np.zeros(model.latent_dim, np.float32)
            image = latent_ops.decode(LatentDecodeRequest(model_name, zeros).validated(model.latent_dim), model).image
            return [*self._slider_updates(model), image, _latent_text(zeros), "", ""]
        except Exception as e:  # noqa: BLE001
            return [*(gr.skip() for _ in range(MAX_SLIDERS)), gr.skip(), gr.skip(), _message(e), gr.skip()]

    def _on_randomize(self, model_name, seed):
        try:
            model = self.models.beta_vae(model_name or None)
            request = RandomLatentRequest(-1 if seed is None else seed).validated()
            latent = latent_ops.random_latent(request, model.latent_dim)
            image = latent_ops.decode(LatentDecodeRequest(model_name, latent).validated(model.latent_dim), model).image
            # The seed box keeps -1 (a new draw per click); the message says which seed this one was.
            return [*self._slider_updates(model, latent), image, _latent_text(latent),
                    info_html(f"Random latent from seed {request.seed}"), ""]
        except Exception as e:  # noqa: BLE001
            return [*(gr.skip() for _ in range(MAX_SLIDERS)), gr.skip(), gr.skip(), _message(e), gr.skip()]

    def _outdir(self, request: gr.Request | None):
        """outputs/<user>/ for a logged-in user, outputs/ otherwise (modules/owners.py)."""
        return owners.output_root(self.outdir, owner_of(request))

    def _on_save(self, model_name, latent_text, request: gr.Request):
        try:
            model = self.models.beta_vae(model_name or None)
            result = latent_ops.decode(LatentDecodeRequest(model_name, latent_text).validated(model.latent_dim), model)
            path = latent_ops.save_png(result.image, result.state, self._outdir(request))
            return gr.File(value=str(path), visible=True), info_html(f"Saved {path.name}")
        except Exception as e:  # noqa: BLE001
            return gr.skip(), _message(e)

    def _encode_api(self, model, image):
        """latent_encode: (model, image) -> (μ as JSON list, σ as JSON list, decoded μ, message, model, input)."""
        try:
            request = LatentEncodeRequest(model, image).validated()
            vae = self.models.beta_vae(model or None)
            stored = latent_state.from_png(request.image, "image")
            model_update = gr.skip()
            note = ""
            if stored is not None:
                vae, model_update, note = self._model_for_state(vae, stored)
            result = latent_ops.encode(request, vae)
            if result.restored is not None:
                note = info_html("Restored the latent stored in this PNG" + (f" ({note})" if note else "") + ".")
            elif note:
                note = info_html(f"This PNG's latent does not fit ({note}); encoded its pixels instead.")
            sigma = "" if result.restored is not None else _latent_text(result.sigma)
            return _latent_text(result.mu), sigma, result.reconstruction, note, model_update, result.input_image
        except Exception as e:  # noqa: BLE001
            return gr.skip(), gr.skip(), None, _message(e), gr.skip(), gr.skip()

    def _model_for_state(self, model, state: latent_state.LatentState):
        """The model a stored latent belongs to: the selected one, or another one here with the stored hash."""
        if not state.model_hash or state.model_hash == model.sha256:
            return model, gr.skip(), ""
        title = self.models.find_by_hash(state.model_hash)
        if title is not None:
            return self.models.beta_vae(title), gr.Dropdown(value=title), f"switched to {title}, the model it was made with"
        return model, gr.skip(), f"made with {state.model or 'another model'} [{state.model_hash[:10]}], not found here"

    def _interpolate_api(self, model, start, end, frames, method, fps, http: gr.Request):
        """latent_interpolate: (model, start, end, frames, method, fps) -> (strip image, [GIF, MP4] files, message)."""
        try:
            vae = self.models.beta_vae(model or None)
            request = LatentInterpolateRequest(model, start, end, frames, method, fps).validated(vae.latent_dim)
            result = latent_ops.interpolate(request, vae, self._outdir(http))
            files = [str(p) for p in (result.gif, result.mp4) if p is not None]
            note = "" if result.mp4 else info_html("GIF only: no ffmpeg binary found for MP4.")
            return result.strip, files, note
        except Exception as e:  # noqa: BLE001
            return None, None, _message(e)

    def _traverse(self, model, latent, dims, k, steps):
        try:
            vae = self.models.beta_vae(model or None)
            request = LatentTraverseRequest(model, latent, dims, k, steps).validated(vae.latent_dim)
            return latent_ops.traverse(request, vae), ""
        except Exception as e:  # noqa: BLE001
            return None, _message(e)

    def _map(self, model, latent, dim_x, dim_y, k, steps, factor, samples):
        try:
            vae = self.models.beta_vae(model or None)
            request = LatentMapRequest(model, latent, dim_x, dim_y, k, steps, factor,
                                       samples).validated(vae.latent_dim)
            return latent_ops.manifold(request, vae), latent_map.scatter(request, vae), ""
        except Exception as e:  # noqa: BLE001
            return None, None, _message(e)

    def _export(self, model_name, latent_text, export_format):
        try:
            model = self.models.beta_vae(model_name or None)
            state = model.state(parse_latent(latent_text, "latent", model.latent_dim))
            folder = Path(tempfile.mkdtemp(prefix="latent-export-"))
            stem = f"{model.name.replace('/', '_')}-latent"
            if export_format == ".npy":
                path = folder / f"{stem}.npy"
                path.write_bytes(latent_state.to_npy_bytes(state))
            else:
                path = folder / f"{stem}.json"
                path.write_text(json.dumps(state.to_dict(), indent=1))
            return str(path), ""
        except Exception as e:  # noqa: BLE001
            return None, _message(e)

    def _import(self, model_name, path):
        try:
            if not path:
                return gr.skip(), gr.skip(), "", gr.skip()
            state = latent_state.load_file(path)
            model = self.models.beta_vae(model_name or None)
            model, model_update, note = self._model_for_state(model, state)
            parse_latent(state.latent, "latent", model.latent_dim)  # a clear message if it does not fit
            text = f"Imported {html.escape(Path(path).name)}" + (f" ({note})" if note else "")
            return _latent_text(state.latent), "", info_html(text), model_update
        except Exception as e:  # noqa: BLE001
            return gr.skip(), gr.skip(), _message(e), gr.skip()


def _hex_colours() -> list[str]:
    return ["#%02x%02x%02x" % rgb for rgb in shapes.COLOURS.values()] + ["#000000", "#808080"]


def _sample(seed):
    """A Shapes data-set image (upscaled for display) and its caption; sample #n is seed n."""
    try:
        seed = max(0, int(seed or 0))
    except (TypeError, ValueError):
        seed = 0
    data = shapes.make_dataset(1, seed=seed)
    return data.images[0], shapes.caption(data.scenes[0])


class SdVaePanel:
    """SD VAE mode: channel offsets/scales and principal directions over an encoded image's latent."""

    def __init__(self, models: LatentModels):
        self.models = models

    def build(self) -> None:
        choices = self.models.sd_vae_choices()
        with gr.Row(equal_height=True):
            self.vae = gr.Dropdown(choices, value=choices[0] if choices else None, allow_custom_value=True,
                                   label="SD VAE (a checkpoint's, or a file in models/VAE)", elem_id="latent_sd_vae",
                                   scale=6)
            self.refresh = gr.Button("↻", elem_id="latent_sd_refresh", scale=0, min_width=48)
            self.size = Slider(64, 1024, value=256, step=64, label="Working size (px)", elem_id="latent_sd_size",
                               scale=2)
        self.state = gr.State(None)
        self.directions_state = gr.State(None)
        with gr.Row():
            with gr.Column():
                self.upload = ImageFile(label="Image", type="filepath", sources=["upload", "clipboard"], height=256,
                                       image_mode=None,
                                       elem_id="latent_sd_image")
                self.encode = gr.Button("Encode", variant="primary", elem_id="latent_sd_encode")
                gr.Markdown("**Channels** — offset in σ of the channel, scale around its mean")
                self.offsets, self.scales, self.channel_rows = [], [], []
                for c in range(sd_ops.MAX_CHANNELS):
                    with gr.Row(visible=c < 4) as row:
                        self.offsets.append(Slider(-3, 3, value=0, step=0.05, label=f"channel {c} offset",
                                                   elem_id=f"latent_sd_offset{c}"))
                        self.scales.append(Slider(0, 3, value=1, step=0.05, label=f"channel {c} scale",
                                                  elem_id=f"latent_sd_scale{c}"))
                    self.channel_rows.append(row)
                gr.Markdown("**Principal directions** of encoded images (Shapes images, or your own)")
                with gr.Row():
                    self.direction_files = gr.File(label="Direction images (optional, 3 or more)", file_count="multiple",
                                                   type="filepath", file_types=["image"], elem_id="latent_sd_direction_files")
                    with gr.Column():
                        self.direction_count = Slider(3, 64, value=16, step=1, label="Shapes images",
                                                      elem_id="latent_sd_direction_count")
                        self.n_directions = Slider(1, sd_ops.MAX_DIRECTIONS, value=4, step=1, label="Directions",
                                                   elem_id="latent_sd_n_directions")
                self.compute = gr.Button("Compute directions", elem_id="latent_sd_compute")
                self.directions = [Slider(-3, 3, value=0, step=0.05, label=f"PC{k + 1}", visible=False,
                                          elem_id=f"latent_sd_pc{k}") for k in range(sd_ops.MAX_DIRECTIONS)]
                self.reset = gr.Button("Reset edits", size="sm", elem_id="latent_sd_reset")
            with gr.Column():
                self.image = gr.Image(label="Decoded", type="pil", format="png", interactive=False, height=320,
                                      elem_id="latent_sd_decoded")
                self.message = gr.HTML(elem_id="latent_sd_message")
                self.channels = gr.Gallery(label="Latent channels (blue −3σ … red +3σ)", columns=4, height=260,
                                           elem_id="latent_sd_channels", interactive=False)
        self._wire()

    def _edit_inputs(self) -> list:
        return [self.state, self.directions_state, self.vae, *self.offsets, *self.scales, *self.directions]

    def _wire(self) -> None:
        rows = self.channel_rows
        self.refresh.click(lambda v: gr.Dropdown(choices=self.models.sd_vae_choices(), value=v),
                           inputs=self.vae, outputs=self.vae, api_name=False)
        self.encode.click(self._encode, inputs=[self.vae, self.upload, self.size],
                          outputs=[self.state, self.directions_state, self.image, self.channels, self.message,
                                   *rows, *self.offsets, *self.scales, *self.directions], api_name=False)
        gr.on([s.input for s in (*self.offsets, *self.scales, *self.directions)], self._decode,
              inputs=self._edit_inputs(), outputs=[self.image, self.channels, self.message],
              concurrency_id="latent_sd_live", **LIVE)
        self.compute.click(self._directions, inputs=[self.state, self.vae, self.direction_files, self.direction_count,
                                                     self.n_directions],
                           outputs=[self.directions_state, *self.directions, self.message], api_name=False)
        self.reset.click(self._reset, inputs=[self.state, self.directions_state, self.vae],
                         outputs=[*self.offsets, *self.scales, *self.directions, self.image, self.channels, self.message],
                         api_name=False)

    def _encode(self, vae_source, image, size):
        n = sd_ops.MAX_CHANNELS
        try:
            request = SdVaeEncodeRequest(vae_source, image, size).validated()
            check_image(request.size, request.size, self.models.backend.limits, "size")  # --max-pixels
            with self.models.sd_vae(request.vae) as vae:
                current = sd_ops.encode(request, vae)
                decoded = sd_ops.decode(current, SdVaeEdit().validated(len(current.latent), 0), vae)
            channels = len(current.latent)
            return [current, None, decoded, sd_ops.channel_views(current.latent),
                    info_html(f"Latent {channels}×{current.latent.shape[1]}×{current.latent.shape[2]} "
                              f"of a {current.input_image.width} px image"),
                    *(gr.Row(visible=c < channels) for c in range(n)),
                    *(gr.Slider(value=0) for _ in range(n)), *(gr.Slider(value=1) for _ in range(n)),
                    *(gr.Slider(value=0, visible=False) for _ in range(sd_ops.MAX_DIRECTIONS))]
        except Exception as e:  # noqa: BLE001
            return [gr.skip(), gr.skip(), gr.skip(), gr.skip(), _message(e),
                    *(gr.skip() for _ in range(3 * n + sd_ops.MAX_DIRECTIONS))]

    def _decode(self, current, directions, vae_source, *values):
        if current is None:
            return gr.skip(), gr.skip(), error_html("Encode an image first")
        n = sd_ops.MAX_CHANNELS
        try:
            channels = len(current.latent)
            edit = SdVaeEdit(list(values[:channels]), list(values[n:n + channels]),
                             list(values[2 * n:2 * n + (len(directions.stds) if directions else 0)]))
            edit = edit.validated(channels, len(directions.stds) if directions else 0)
            with self.models.sd_vae(current.vae) as vae:
                image = sd_ops.decode(current, edit, vae, directions)
            return image, sd_ops.channel_views(sd_ops.apply_edit(current, edit, directions)), ""
        except Exception as e:  # noqa: BLE001
            return gr.skip(), gr.skip(), _message(e)

    def _directions(self, current, vae_source, files, count, n_directions):
        k = sd_ops.MAX_DIRECTIONS
        if current is None:
            return [gr.skip(), *(gr.skip() for _ in range(k)), error_html("Encode an image first")]
        try:
            request = SdVaeDirectionsRequest(current.vae, files, count, n_directions).validated(k)
            with self.models.sd_vae(current.vae) as vae:
                directions = sd_ops.principal_directions(request, vae, current.input_image.width)
            updates = [gr.Slider(value=0, visible=i < len(directions.stds),
                                 label=f"PC{i + 1} ({directions.explained[i]:.0%} of variance)" if i < len(directions.stds)
                                 else f"PC{i + 1}") for i in range(k)]
            source = "your images" if request.images else "Shapes images"
            return [directions, *updates, info_html(f"{len(directions.stds)} directions from {directions.images} {source}")]
        except Exception as e:  # noqa: BLE001
            return [gr.skip(), *(gr.skip() for _ in range(k)), _message(e)]

    def _reset(self, current, directions, vae_source):
        n, k = sd_ops.MAX_CHANNELS, sd_ops.MAX_DIRECTIONS
        sliders = [*(gr.Slider(value=0) for _ in range(n)), *(gr.Slider(value=1) for _ in range(n)),
                   *(gr.Slider(value=0) for _ in range(k))]
        if current is None:
            return [*sliders, gr.skip(), gr.skip(), ""]
        try:
            with self.models.sd_vae(current.vae) as vae:
                image = sd_ops.decode(current, SdVaeEdit().validated(len(current.latent), 0), vae)
            return [*sliders, image, sd_ops.channel_views(current.latent), ""]
        except Exception as e:  # noqa: BLE001
            return [*sliders, gr.skip(), gr.skip(), _message(e)]


def build(backend) -> None:
    """The whole tab; called inside its gr.Tab."""
    models = LatentModels(backend)
    gr.HTML(STYLE, padding=False, elem_id="latent_style")
    with gr.Tabs():
        with gr.Tab("β-VAE", id="latent_beta_vae"):
            BetaVaePanel(models).build()
        with gr.Tab("SD VAE", id="latent_sd_vae_tab"):
            SdVaePanel(models).build()
