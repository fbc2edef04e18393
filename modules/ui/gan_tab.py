"""The GAN Sampler tab: layout and wiring only. The handlers (gan_handlers.py) build requests and run them
through the runner; the seed-plane pad is gan_pad.py."""
from __future__ import annotations

import random

import gradio as gr

from modules.backend import Backend
from modules.capabilities.gan import ALL_CLASSES, GanCapabilities
from modules.capabilities.gan.run import NO_LAYER_STYLES
from modules.capabilities.gan.video import mp4_available
from modules.errors import UserError
from modules.generation.seeds import MAX_SEED, PLANE_WIDTH
from modules.public_paths import scrub, shown
from modules.ui.components import Slider
from modules.ui.errors import user_errors
from modules.ui.gan_handlers import DIRECTION_SLIDERS, GanHandlers
from modules.ui.gan_pad import HEAD, PAD_HTML, PAD_JS


class GanTab(GanHandlers):
    def __init__(self, backend: Backend):
        self.backend = backend

    def build(self) -> None:
        titles = self.titles()
        caps = self.capabilities_of(titles[0] if titles else None)
        with gr.Row(equal_height=True):
            self.model = gr.Dropdown(titles, value=titles[0] if titles else None, label="GAN model", scale=6,
                                     elem_id="gan_model", allow_custom_value=True)
            self.refresh = gr.Button("↻", elem_id="gan_refresh", scale=0, min_width=48)
            self.convert = gr.Button("Convert to .safetensors", elem_id="gan_convert", scale=1, min_width=120,
                                     visible=self.is_pickle(titles[0] if titles else None))
        self.notice = gr.Markdown(self._notice(titles), elem_id="gan_notice")
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Row(equal_height=True):
                    self.seeds = gr.Textbox("0-7", label="Seeds (a list or ranges: 0,1,4-6)", elem_id="gan_seeds",
                                            scale=5)
                    self.prev_seeds = gr.Button("◀", elem_id="gan_prev_seeds", scale=0, min_width=40)
                    self.next_seeds = gr.Button("▶", elem_id="gan_next_seeds", scale=0, min_width=40)
                    self.random_seed = gr.Button("⚄", elem_id="gan_random_seed", scale=0, min_width=40)
                self.psi = Slider(-1, 2, value=1.0, step=0.05, label="Truncation ψ (1: plain, 0: the class's average)",
                                  elem_id="gan_truncation_psi")
                self.class_name = gr.Dropdown(**self._class_choices(caps), label="Class", elem_id="gan_class")
                self.cutoff = Slider(0, max(caps.num_ws, 1), value=max(caps.num_ws, 1), step=1,
                                     label="Truncation cutoff (layers before it are truncated)",
                                     elem_id="gan_truncation_cutoff", visible=caps.layer_styles)
                with gr.Group(visible=caps.layer_styles) as self.mixing:
                    with gr.Row():
                        # A text box, not a number: Gradio sends an emptied number box as 0, which is a seed.
                        self.mix_seed = gr.Textbox("", label="Style mix seed (empty: off; 5,6,7: a grid)",
                                                   elem_id="gan_style_mix_seed")
                    with gr.Row():
                        self.mix_from = Slider(0, max(caps.num_ws, 1), value=1, step=1,
                                               label="Mix from layer", elem_id="gan_style_mix_from")
                        self.mix_to = Slider(1, max(caps.num_ws, 2), value=max(caps.num_ws, 2), step=1,
                                             label="... to layer (exclusive)", elem_id="gan_style_mix_to")
                self.layer_note = gr.Markdown(self._layer_note(caps), elem_id="gan_layer_note")
                with gr.Group(visible=caps.stylegan) as self.stylegan_controls:
                    self.noise_mode = gr.Radio(["const", "random", "none"], value="const", label="Noise mode",
                                               elem_id="gan_noise_mode")
                    with gr.Row(visible=caps.input_transform) as self.transform_row:
                        self.translate_x = gr.Number(0.0, label="Translate x", elem_id="gan_translate_x", min_width=80)
                        self.translate_y = gr.Number(0.0, label="Translate y", elem_id="gan_translate_y", min_width=80)
                        self.rotate = gr.Number(0.0, label="Rotate (degrees)", elem_id="gan_rotate", min_width=80)
                with gr.Accordion("Latent directions", open=False, elem_id="gan_directions",
                                  visible=caps.stylegan) as self.directions_area:
                    gr.Markdown("SeFa: closed form, from the style weights; GANSpace: principal components of "
                                "sampled w. Each slider moves the picture along one direction, largest effect first.")
                    with gr.Row():
                        self.direction_method = gr.Radio([("SeFa", "sefa"), ("GANSpace", "ganspace")], value="sefa",
                                                         label="Method", elem_id="gan_direction_method")
                        self.direction_from = Slider(0, max(caps.num_ws - 1, 1), value=0, step=1, label="From layer",
                                                     elem_id="gan_direction_from")
                        self.direction_to = Slider(1, max(caps.num_ws, 2), value=max(caps.num_ws, 2), step=1,
                                                   label="To layer (exclusive)", elem_id="gan_direction_to")
                    self.find_directions = gr.Button("Find directions", elem_id="gan_find_directions")
                    self.direction_sliders = [Slider(-10, 10, value=0, step=0.1, label=f"Direction {n + 1}",
                                                     elem_id=f"gan_direction_{n + 1}")
                                              for n in range(DIRECTION_SLIDERS)]
                    with gr.Row():
                        self.save_directions = gr.Button("Save directions", elem_id="gan_save_directions")
                        self.reset_directions = gr.Button("Reset sliders", elem_id="gan_reset_directions")
                    self.directions_download = gr.File(label="Direction file", interactive=False,
                                                       elem_id="gan_directions_download")
                    self.directions_upload = gr.File(label="Load a direction file (.json)", file_types=[".json"],
                                                     type="filepath", elem_id="gan_directions_upload")
                    self.directions_file = gr.Textbox("", visible=False, elem_id="gan_directions_file")
                self.generate = gr.Button("Generate", variant="primary", elem_id="gan_generate")
                with gr.Accordion("Seed plane", open=True, elem_id="gan_plane"):
                    gr.Markdown(f"Point (i, j) is seed i + {PLANE_WIDTH}·j; between points the latent blends the "
                                "four neighbouring seeds. Drag the dot; Snap goes to the nearest seed.")
                    self.pad = gr.HTML("0.000,0.000", html_template=PAD_HTML, js_on_load=PAD_JS, head=HEAD,
                                       elem_id="gan_plane_pad")
                    with gr.Row(equal_height=True):
                        self.plane_x = gr.Number(0.0, label="x", elem_id="gan_plane_x", min_width=100)
                        self.plane_y = gr.Number(0.0, label="y", elem_id="gan_plane_y", min_width=100)
                        self.snap = gr.Button("Snap", elem_id="gan_plane_snap", min_width=60)
                        self.from_seeds = gr.Button("Go to first seed", elem_id="gan_plane_from_seeds", min_width=60)
                        self.plane_save = gr.Button("Save", elem_id="gan_plane_save", min_width=60)
                    self.plane_image = gr.Image(label="Seed plane", type="pil", format="png", height=256,
                                                interactive=False, elem_id="gan_plane_image")
                with gr.Accordion("Interpolation video", open=False, elem_id="gan_video"):
                    with gr.Row():
                        self.frames = Slider(2, 240, value=24, step=1, label="Frames per seed",
                                             elem_id="gan_video_frames")
                        self.fps = Slider(1, 60, value=24, step=1, label="FPS", elem_id="gan_video_fps")
                    with gr.Row():
                        formats = ["gif", "mp4"] if mp4_available() else ["gif"]
                        self.video_format = gr.Radio(formats, value="gif", label="Format", elem_id="gan_video_format")
                        self.space = gr.Radio([("lerp in w", "w"), ("slerp in z", "z")], value="w", label="Path",
                                              elem_id="gan_video_space")
                        self.loop = gr.Checkbox(True, label="Loop", elem_id="gan_video_loop")
                        self.size = gr.Dropdown([128, 256, 512], value=256, label="Size", elem_id="gan_video_size")
                    self.render_video = gr.Button("Render video", elem_id="gan_video_render")
                    self.video_gif = gr.Image(label="Video (GIF)", type="filepath", interactive=False,
                                              elem_id="gan_video_gif", visible=False)
                    self.video_mp4 = gr.Video(label="Video (MP4)", interactive=False, elem_id="gan_video_mp4",
                                              visible=False)
                with gr.Accordion("Image → latent (projection)", open=False, elem_id="gan_projection"):
                    gr.Markdown("Finds the latent whose picture is nearest yours (squared error on pixels, from the "
                                "average w, as NVIDIA's projector; no perceptual loss). The result becomes the "
                                "current picture: the direction sliders move it.")
                    self.project_file = gr.Image(label="Picture to project", type="filepath", sources=["upload"],
                                                 elem_id="gan_project_image", height=200)
                    with gr.Row():
                        self.project_steps = Slider(1, 2000, value=200, step=1, label="Steps",
                                                    elem_id="gan_project_steps")
                        self.project_w_plus = gr.Checkbox(False, label="w+ (one w per layer: closer, less editable; "
                                                          "StyleGAN files)", elem_id="gan_project_w_plus")
                    with gr.Row():
                        self.project = gr.Button("Project", variant="primary", elem_id="gan_project")
                        self.project_stop = gr.Button("Stop", elem_id="gan_project_stop")
                with gr.Accordion("Latents: export and import", open=False, elem_id="gan_latents"):
                    self.export = gr.Button("Export latents of the last images", elem_id="gan_export")
                    self.export_file = gr.File(label="Exported latents", interactive=False, elem_id="gan_export_file")
                    self.import_file = gr.File(label="Import: drop a .json latent file or a PNG saved here",
                                               file_types=[".json", ".png"], type="filepath", elem_id="gan_import")
            with gr.Column(scale=1):
                # Opens on a grid of every class (first_grid: called on each page load); the grid, first in the
                # gallery, is shown large.
                self.gallery = gr.Gallery(self.first_grid, label="Output", columns=4, format="png", height=520,
                                          elem_id="gan_gallery", interactive=False, object_fit="contain",
                                          preview=True)
                self.message = gr.HTML(elem_id="gan_message")
                self.infotext = gr.Textbox(label="Generation parameters", lines=2, interactive=False,
                                           elem_id="gan_infotext", buttons=["copy"])
        self.last_states = gr.State([])
        self.projected = gr.State(None)  # the projected latent, while it is the current picture
        self._wire()

    # ---------------------------------------------------------------- wiring
    def sample_inputs(self) -> list:
        return [self.model, self.seeds, self.psi, self.class_name, self.cutoff, self.mix_seed, self.mix_from,
                self.noise_mode, self.translate_x, self.translate_y, self.rotate, self.mix_to, self.directions_file,
                *self.direction_sliders]

    @staticmethod
    def sample_input_names() -> list[str]:
        """The API's names of sample_inputs(), in order."""
        return ["model", "seeds", "truncation_psi", "class_name", "truncation_cutoff", "style_mix_seed",
                "style_mix_from", "noise_mode", "translate_x", "translate_y", "rotate", "style_mix_to",
                "directions_file", *(f"direction_{n + 1}" for n in range(DIRECTION_SLIDERS))]

    def _wire(self) -> None:
        outputs = [self.gallery, self.message, self.infotext, self.last_states]
        # Progress on the gallery only: Gradio's timer text ("processing | 0.4s") never flashes in the message.
        busy = {"show_progress_on": [self.gallery]}
        self.generate.click(self.sample, inputs=self.sample_inputs(), outputs=outputs, api_name="gan_sample",
                            concurrency_limit=None, **busy)
        self.seeds.submit(self.sample, inputs=self.sample_inputs(), outputs=outputs, api_name=False,
                          concurrency_limit=None, **busy)
        for button, direction in ((self.prev_seeds, -1), (self.next_seeds, 1)):
            button.click(lambda text, d=direction: self.shift(text, d), inputs=self.seeds, outputs=self.seeds,
                         api_name=False, queue=False).success(
                self.sample, inputs=self.sample_inputs(), outputs=outputs, api_name=False, **busy)
        self.random_seed.click(lambda: str(random.randrange(0, MAX_SEED + 1)), outputs=self.seeds, api_name=False,
                               queue=False).then(self.sample, inputs=self.sample_inputs(), outputs=outputs,
                                                 api_name=False, **busy)
        self.refresh.click(self._refresh, inputs=self.model, outputs=[self.model, self.notice], api_name=False)
        self.convert.click(self.convert_pickle, inputs=self.model, outputs=[self.model, self.notice, self.message],
                           api_name=False)
        self.model.change(self._model_changed, inputs=[self.model, self.class_name],
                          outputs=[self.class_name, self.cutoff, self.mixing, self.mix_from, self.mix_to, self.layer_note,
                                   self.stylegan_controls, self.transform_row, self.convert, self.directions_area,
                                   self.directions_file, self.direction_from, self.direction_to],
                          api_name=False)

        settings = [self.model, self.psi, self.class_name, self.cutoff, self.mix_seed, self.mix_from, self.noise_mode,
                    self.translate_x, self.translate_y, self.rotate, self.mix_to]  # as the sampler's
        plane = [self.plane_x, self.plane_y, self.plane_image, self.message]
        self.pad.drag(self.plane_from_pad, inputs=[self.pad, *settings], outputs=plane, api_name=False,
                      trigger_mode="always_last", concurrency_limit=None, show_progress="hidden")
        for box in (self.plane_x, self.plane_y):
            box.submit(self.plane_from_numbers, inputs=[self.plane_x, self.plane_y, *settings],
                       outputs=[self.pad, *plane], api_name=False, show_progress_on=[self.plane_image])
        self.snap.click(self.plane_snap, inputs=[self.plane_x, self.plane_y, *settings],
                        outputs=[self.pad, *plane, self.seeds], api_name=False, show_progress_on=[self.plane_image])
        self.from_seeds.click(self.plane_from_seeds, inputs=[self.seeds, *settings], outputs=[self.pad, *plane],
                              api_name=False, show_progress_on=[self.plane_image])
        self.plane_save.click(self.plane_save_image, inputs=[self.plane_x, self.plane_y, *settings],
                              outputs=[self.message, self.infotext], api_name=False)

        self.render_video.click(self.video, inputs=[self.model, self.seeds, self.psi, self.class_name, self.frames,
                                                    self.fps, self.loop, self.video_format, self.size, self.space,
                                                    self.cutoff, self.mix_seed, self.mix_from, self.noise_mode,
                                                    self.translate_x, self.translate_y, self.rotate, self.mix_to],
                                outputs=[self.video_gif, self.video_mp4, self.message, self.infotext],
                                api_name="gan_video")
        self.export.click(self.export_latents, inputs=self.last_states, outputs=[self.export_file, self.message],
                          api_name=False)
        self.find_directions.click(self.directions_found, inputs=[self.model, self.class_name, self.direction_method,
                                                                  self.direction_from, self.direction_to],
                                   outputs=[self.directions_file, self.message, *self.direction_sliders],
                                   api_name=False)
        current = [self.projected, *self.sample_inputs()]
        for slider in self.direction_sliders:
            slider.release(self.sample_current, inputs=current, outputs=outputs, api_name=False,
                           trigger_mode="always_last", **busy)
        self.reset_directions.click(lambda: [0.0] * DIRECTION_SLIDERS, outputs=self.direction_sliders, api_name=False,
                                    queue=False).then(self.sample_current, inputs=current, outputs=outputs,
                                                      api_name=False, **busy)
        self.project.click(self.project_image, inputs=[self.project_file, self.model, self.class_name,
                                                       self.project_steps, self.project_w_plus],
                           outputs=[self.projected, self.gallery, self.infotext, self.last_states, self.message,
                                    *self.direction_sliders], api_name=False, **busy)
        self.project_stop.click(self.stop_projection, api_name=False, queue=False)
        back_to_seeds = {"fn": lambda: None, "outputs": self.projected, "api_name": False, "queue": False}
        self.generate.click(**back_to_seeds)  # Generate, new seeds or another model: seeds are current again
        self.seeds.submit(**back_to_seeds)
        self.model.change(**back_to_seeds)
        self.save_directions.click(self.directions_saved, inputs=self.directions_file,
                                   outputs=[self.directions_download, self.message], api_name=False)
        self.directions_upload.upload(self.directions_loaded, inputs=[self.directions_upload, self.model],
                                      outputs=[self.directions_file, self.message, *self.direction_sliders],
                                      api_name=False)
        self.import_file.upload(self.import_latents, inputs=[self.import_file, self.model],
                                outputs=[self.model, self.seeds, self.psi, self.class_name, self.cutoff, self.mix_seed,
                                         self.mix_from, self.gallery, self.message, self.infotext, self.last_states,
                                         self.noise_mode, self.mix_to, self.translate_x, self.translate_y, self.rotate],
                                api_name=False)

    # ---------------------------------------------------------------- models
    def titles(self) -> list[str]:
        try:
            return self.backend.gan_titles()
        except Exception:  # noqa: BLE001 - an unreadable folder is shown as "no GAN", not a crash
            return []

    def _notice(self, titles: list[str]) -> str:
        if titles:
            return ""
        folder = shown(self.backend.config.models_dir / "GAN")
        lines = [f"**No usable GAN.** Put a self-describing GAN `.safetensors` or an NVIDIA StyleGAN2-ADA / StyleGAN3 "
                 f"network `.pkl` into `{folder}` (`python -m modules.zoo.train.gan` trains the built-in one), "
                 "then press ↻."]
        lines += [f"- `{m.name}` cannot be used: {scrub(m.error or '')}" for m in self.backend.zoo_registry.models
                  if m.kind == "gan" and not m.usable]
        return "\n".join(lines)

    @staticmethod
    def _class_choices(caps: GanCapabilities) -> dict:
        if not caps.conditional:
            return {"choices": [], "value": None, "visible": False}
        return {"choices": [*caps.class_names, ALL_CLASSES], "value": caps.class_names[0], "visible": True}

    @staticmethod
    def _layer_note(caps: GanCapabilities) -> str:
        if caps.layer_styles or not caps.z_dim:
            return ""
        return f"*Truncation cutoff and style mixing are hidden: {NO_LAYER_STYLES}.*"

    @user_errors
    def _refresh(self, current):
        titles = self.titles()
        value = current if current in titles else (titles[0] if titles else None)
        return {self.model: gr.Dropdown(choices=titles, value=value), self.notice: self._notice(titles)}

    @user_errors
    def _model_changed(self, title, current_class):
        caps = self.capabilities_of(title)
        classes = self._class_choices(caps)
        if current_class in classes["choices"]:
            classes["value"] = current_class  # an import sets the model and its class together
        return {self.class_name: gr.Dropdown(**classes),
                self.cutoff: gr.Slider(maximum=max(caps.num_ws, 1), value=max(caps.num_ws, 1),
                                       visible=caps.layer_styles),
                self.mixing: gr.Group(visible=caps.layer_styles),
                self.mix_from: gr.Slider(maximum=max(caps.num_ws, 1), value=1),
                self.mix_to: gr.Slider(maximum=max(caps.num_ws, 2), value=max(caps.num_ws, 2)),
                self.layer_note: self._layer_note(caps),
                self.stylegan_controls: gr.Group(visible=caps.stylegan),
                self.transform_row: gr.Row(visible=caps.input_transform),
                self.convert: gr.Button(visible=self.is_pickle(title)),
                self.directions_area: gr.Accordion(visible=caps.stylegan),
                self.directions_file: "",  # another model's directions do not fit
                self.direction_from: gr.Slider(maximum=max(caps.num_ws - 1, 1), value=0),
                self.direction_to: gr.Slider(maximum=max(caps.num_ws, 2), value=max(caps.num_ws, 2))}

    def is_pickle(self, title: str | None) -> bool:
        from modules.models.stylegan_files import PICKLE_SUFFIXES
        try:
            return bool(title) and self.backend.zoo_registry.find("gan", title).path.suffix.lower() in PICKLE_SUFFIXES
        except UserError:
            return False

    @user_errors
    def convert_pickle(self, title):
        """The pickle's generator as our .safetensors beside it; the dropdown then shows the new file."""
        new_title = self.backend.convert_gan_pickle(title)
        titles = self.titles()
        return {self.model: gr.Dropdown(choices=titles, value=new_title), self.notice: self._notice(titles),
                self.message: f"Converted to {new_title}: the pickle is no longer needed."}
