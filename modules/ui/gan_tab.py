"""The GAN Sampler tab: layout and wiring only; the work happens in Backend.gan_sample / gan_video."""
from __future__ import annotations

import random
import tempfile
from pathlib import Path

import gradio as gr
from PIL import Image

from modules.backend import Backend
from modules.errors import UserError, shown_message
from modules.generation.gan import NO_LAYER_STYLES, GanCapabilities, capabilities, describe
from modules.generation.gan_request import ALL_CLASSES, GanRequest, GanVideoRequest
from modules.generation.gan_state import export_text, read_states, request_from_states
from modules.generation.gan_video import mp4_available
from modules.generation.seeds import (MAX_SEED, PLANE_WIDTH, format_seeds, nearest_plane_seed, parse_seeds,
                                      plane_point, shift_seeds)
from modules.public_paths import scrub, shown
from modules.ui.common import error_html, info_html, owner_of, queue_user_of
from modules.ui.components import Slider

PAD_CELL_PX = 48  # one seed step of the plane pad

# A 2-D pad for the seed plane: drag to move (the grid moves with the pointer, the orange dot is the
# position); lines are the integer points, where the image is exactly a seed's.
PAD_HTML = ('<div class="gan-pad" title="Drag to move through the seed plane">'
            '<div class="gan-pad-dot"></div><span class="gan-pad-label"></span></div>')
PAD_JS = """
const CELL = %d, WIDTH = %d;
const pad = () => element.querySelector('.gan-pad');
const parse = (v) => { const p = String(v || '0,0').split(',').map(Number);
  return [Number.isFinite(p[0]) ? p[0] : 0, Number.isFinite(p[1]) ? p[1] : 0]; };
function place() {
  const el = pad(); if (!el) return;
  const [x, y] = parse(props.value);
  el.style.backgroundPosition = `${el.clientWidth / 2 - x * CELL}px ${el.clientHeight / 2 - y * CELL}px`;
  const seed = Math.round(x) + Math.round(y) * WIDTH;
  el.querySelector('.gan-pad-label').textContent = `x ${x.toFixed(2)}  y ${y.toFixed(2)}  ·  nearest seed ${seed}`;
}
let start = null;
element.addEventListener('pointerdown', (e) => {
  const el = pad(); if (!el || !el.contains(e.target)) return;
  start = {px: e.clientX, py: e.clientY, xy: parse(props.value)};
  el.setPointerCapture(e.pointerId); el.classList.add('dragging'); e.preventDefault();
});
element.addEventListener('pointermove', (e) => {
  if (!start) return;
  const x = Math.max(0, start.xy[0] - (e.clientX - start.px) / CELL);
  const y = Math.max(0, start.xy[1] - (e.clientY - start.py) / CELL);
  props.value = `${x.toFixed(3)},${y.toFixed(3)}`;
  place(); trigger('drag');
});
const stop = () => { if (!start) return; start = null; const el = pad(); if (el) el.classList.remove('dragging'); };
element.addEventListener('pointerup', stop);
element.addEventListener('pointercancel', stop);
watch('value', place);
new ResizeObserver(place).observe(element);
place();
""" % (PAD_CELL_PX, PLANE_WIDTH)
HEAD = """<style>
#gan_gallery img, #gan_plane_image img, #gan_video_gif img { image-rendering: pixelated; }
.gan-pad { position: relative; height: 200px; border-radius: 6px; cursor: grab; touch-action: none; user-select: none;
  background-color: #fafafa; border: 1px solid #ddd;
  background-image: linear-gradient(#c8c8c8 1px, transparent 1px), linear-gradient(90deg, #c8c8c8 1px, transparent 1px);
  background-size: %dpx %dpx; }
.gan-pad.dragging { cursor: grabbing; }
.gan-pad-dot { position: absolute; left: 50%%; top: 50%%; width: 12px; height: 12px; margin: -6px 0 0 -6px;
  border-radius: 50%%; background: #f97316; box-shadow: 0 0 0 2px #fff; pointer-events: none; }
.gan-pad-label { position: absolute; left: 6px; bottom: 4px; padding: 1px 6px; font: 12px ui-monospace, monospace;
  color: #333; background: rgba(255, 255, 255, .85); border-radius: 4px; pointer-events: none; }
</style>""" % (PAD_CELL_PX, PAD_CELL_PX)


def _message(error: Exception) -> str:
    return error_html(shown_message(error, "the GAN tab"))


def _position_text(x: float, y: float) -> str:
    return f"{x:.3f},{y:.3f}"


class GanTab:
    def __init__(self, backend: Backend):
        self.backend = backend

    def build(self) -> None:
        titles = self._titles()
        caps = self._capabilities(titles[0] if titles else None)
        with gr.Row(equal_height=True):
            self.model = gr.Dropdown(titles, value=titles[0] if titles else None, label="GAN model", scale=6,
                                     elem_id="gan_model", allow_custom_value=True)
            self.refresh = gr.Button("↻", elem_id="gan_refresh", scale=0, min_width=48)
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
                        self.mix_seed = gr.Number(None, precision=0, label="Style mix seed (empty: off)",
                                                  elem_id="gan_style_mix_seed")
                        self.mix_from = Slider(1, max(caps.num_ws - 1, 2), value=1, step=1,
                                               label="Mix from layer", elem_id="gan_style_mix_from")
                self.layer_note = gr.Markdown(self._layer_note(caps), elem_id="gan_layer_note")
                self.generate = gr.Button("Generate", variant="primary", elem_id="gan_generate")
                with gr.Accordion("Seed plane", open=True, elem_id="gan_plane"):
                    gr.Markdown(f"Point (i, j) is seed i + {PLANE_WIDTH}·j; between points the latent blends the "
                                "four neighbouring seeds. Drag the pad; Snap goes to the nearest seed.")
                    self.pad = gr.HTML("0.000,0.000", html_template=PAD_HTML, js_on_load=PAD_JS, head=HEAD,
                                       elem_id="gan_plane_pad")
                    with gr.Row(equal_height=True):
                        self.plane_x = gr.Number(0.0, label="x", elem_id="gan_plane_x", min_width=80)
                        self.plane_y = gr.Number(0.0, label="y", elem_id="gan_plane_y", min_width=80)
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
                with gr.Accordion("Latents: export and import", open=False, elem_id="gan_latents"):
                    self.export = gr.Button("Export latents of the last images", elem_id="gan_export")
                    self.export_file = gr.File(label="Exported latents", interactive=False, elem_id="gan_export_file")
                    self.import_file = gr.File(label="Import: drop a .json latent file or a PNG saved here",
                                               file_types=[".json", ".png"], type="filepath", elem_id="gan_import")
            with gr.Column(scale=1):
                self.gallery = gr.Gallery(label="Output", columns=4, format="png", height=520, elem_id="gan_gallery",
                                          interactive=False, object_fit="contain")
                self.message = gr.HTML(elem_id="gan_message")
                self.infotext = gr.Textbox(label="Generation parameters", lines=2, interactive=False,
                                           elem_id="gan_infotext", buttons=["copy"])
        self.last_states = gr.State([])
        self._wire()

    # ---------------------------------------------------------------- wiring
    def sample_inputs(self) -> list:
        return [self.model, self.seeds, self.psi, self.class_name, self.cutoff, self.mix_seed, self.mix_from]

    def _wire(self) -> None:
        outputs = [self.gallery, self.message, self.infotext, self.last_states]
        self.generate.click(self.sample, inputs=self.sample_inputs(), outputs=outputs, api_name="gan_sample",
                            concurrency_limit=None)
        self.seeds.submit(self.sample, inputs=self.sample_inputs(), outputs=outputs, api_name=False,
                          concurrency_limit=None)
        for button, direction in ((self.prev_seeds, -1), (self.next_seeds, 1)):
            button.click(lambda text, d=direction: self._shift(text, d), inputs=self.seeds, outputs=self.seeds,
                         api_name=False, queue=False).success(
                self.sample, inputs=self.sample_inputs(), outputs=outputs, api_name=False)
        self.random_seed.click(lambda: str(random.randrange(0, MAX_SEED + 1)), outputs=self.seeds, api_name=False,
                               queue=False).then(self.sample, inputs=self.sample_inputs(), outputs=outputs,
                                                 api_name=False)
        self.refresh.click(self._refresh, inputs=self.model, outputs=[self.model, self.notice], api_name=False)
        self.model.change(self._model_changed, inputs=[self.model, self.class_name],
                          outputs=[self.class_name, self.cutoff, self.mixing, self.mix_from, self.layer_note],
                          api_name=False)

        plane_inputs = [self.model, self.psi, self.class_name, self.cutoff, self.mix_seed, self.mix_from]
        plane_outputs = [self.plane_x, self.plane_y, self.plane_image, self.message]
        self.pad.drag(self.plane_from_pad, inputs=[self.pad, *plane_inputs], outputs=plane_outputs, api_name=False,
                      trigger_mode="always_last", concurrency_limit=None, show_progress="hidden")
        for box in (self.plane_x, self.plane_y):
            box.submit(self.plane_from_numbers, inputs=[self.plane_x, self.plane_y, *plane_inputs],
                       outputs=[self.pad, *plane_outputs], api_name=False)
        self.snap.click(self.plane_snap, inputs=[self.plane_x, self.plane_y, *plane_inputs],
                        outputs=[self.pad, *plane_outputs, self.seeds], api_name=False)
        self.from_seeds.click(self.plane_from_seeds, inputs=[self.seeds, *plane_inputs],
                              outputs=[self.pad, *plane_outputs], api_name=False)
        self.plane_save.click(self.plane_save_image, inputs=[self.plane_x, self.plane_y, *plane_inputs],
                              outputs=[self.message, self.infotext], api_name=False)

        self.render_video.click(self.video, inputs=[self.model, self.seeds, self.psi, self.class_name, self.frames,
                                                    self.fps, self.loop, self.video_format, self.size, self.space],
                                outputs=[self.video_gif, self.video_mp4, self.message, self.infotext],
                                api_name="gan_video")
        self.export.click(self.export_latents, inputs=self.last_states, outputs=[self.export_file, self.message],
                          api_name=False)
        self.import_file.upload(self.import_latents, inputs=[self.import_file, self.model],
                                outputs=[self.model, self.seeds, self.psi, self.class_name, self.cutoff, self.mix_seed,
                                         self.mix_from, self.gallery, self.message, self.infotext, self.last_states],
                                api_name=False)

    # ---------------------------------------------------------------- models
    def _titles(self) -> list[str]:
        try:
            return self.backend.gan_titles()
        except Exception:  # noqa: BLE001 - an unreadable folder is shown as "no GAN", not a crash
            return []

    def _notice(self, titles: list[str]) -> str:
        if titles:
            return ""
        folder = shown(self.backend.config.models_dir / "GAN")
        lines = [f"**No usable GAN.** Put a self-describing GAN `.safetensors` into `{folder}` "
                 "(`python -m modules.zoo.train.gan` trains the built-in one), then press ↻."]
        lines += [f"- `{m.name}` cannot be used: {scrub(m.error or '')}" for m in self.backend.zoo_registry.models
                  if m.kind == "gan" and not m.usable]
        return "\n".join(lines)

    def _capabilities(self, title: str | None) -> GanCapabilities:
        if not title:
            return GanCapabilities(0, (), 0, 0)
        try:
            return capabilities(self.backend.gan_model(title)[1])
        except UserError:
            return GanCapabilities(0, (), 0, 0)

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

    def _refresh(self, current):
        titles = self._titles()
        value = current if current in titles else (titles[0] if titles else None)
        return gr.Dropdown(choices=titles, value=value), self._notice(titles)

    def _model_changed(self, title, current_class):
        caps = self._capabilities(title)
        classes = self._class_choices(caps)
        if current_class in classes["choices"]:
            classes["value"] = current_class  # an import sets the model and its class together
        return (gr.Dropdown(**classes), gr.Slider(maximum=max(caps.num_ws, 1), value=max(caps.num_ws, 1),
                                                  visible=caps.layer_styles),
                gr.Group(visible=caps.layer_styles), gr.Slider(maximum=max(caps.num_ws - 1, 2), value=1),
                self._layer_note(caps))

    def _request(self, model, psi, class_name, cutoff, mix_seed, mix_from, **values) -> GanRequest:
        caps = self._capabilities(model)
        layered = caps.layer_styles
        return GanRequest(model=model or None, truncation_psi=psi, class_name=class_name,
                          truncation_cutoff=cutoff if layered and cutoff is not None and cutoff < caps.num_ws else None,
                          style_mix_seed=mix_seed if layered else None, style_mix_from=mix_from or 1, **values)

    # ---------------------------------------------------------------- sampling
    def sample(self, model, seeds, psi, class_name, cutoff, mix_seed, mix_from, request: gr.Request = None):
        """Sample a grid: (gallery, message, infotext, states)."""
        job = self.backend.new_job("gan", owner_of(request), queue_user=queue_user_of(request))
        try:
            result = self.backend.gan_sample(self._request(model, psi, class_name, cutoff, mix_seed, mix_from,
                                                           seeds=seeds), job)
        except Exception as e:  # noqa: BLE001 - shown to the user
            return gr.skip(), _message(e), "", gr.skip()
        return self._gallery(result), "", result.infotext, result.states

    def _gallery(self, result) -> list:
        caps = capabilities(self.backend.gan_model(result.request.model)[1])
        items = [(image, describe(s, caps)) for image, s in zip(result.images, result.samples)]
        if result.grid is not None:
            items.insert(0, (result.grid, f"Grid · {len(result.images)} images"))
        return items

    def _shift(self, text: str, direction: int) -> str:
        try:
            return shift_seeds(text, direction)
        except UserError as e:
            raise gr.Error(str(e)) from None

    # ---------------------------------------------------------------- seed plane
    def _plane(self, x, y, model, psi, class_name, cutoff, mix_seed, mix_from, save: bool = False):
        result = self.backend.gan_sample(self._request(model, psi, class_name, cutoff, mix_seed, mix_from,
                                                       position=(x, y), save_images=save))
        image = result.grid or result.images[0]
        factor = max(1, 256 // max(image.size))  # crisp pixels at a readable size
        return result, image.resize((image.width * factor, image.height * factor), Image.NEAREST)

    def plane_from_pad(self, pad_value, *inputs):
        try:
            x, y = (max(0.0, float(v)) for v in str(pad_value).split(","))
            _, image = self._plane(x, y, *inputs)
        except Exception as e:  # noqa: BLE001
            return gr.skip(), gr.skip(), gr.skip(), _message(e)
        return round(x, 3), round(y, 3), image, ""

    def plane_from_numbers(self, x, y, *inputs):
        x, y = max(0.0, float(x or 0)), max(0.0, float(y or 0))
        return _position_text(x, y), *self.plane_from_pad(_position_text(x, y), *inputs)

    def plane_snap(self, x, y, *inputs):
        seed = nearest_plane_seed(float(x or 0), float(y or 0))
        i, j = round(float(x or 0)), round(float(y or 0))
        return *self.plane_from_numbers(i, j, *inputs), str(seed)

    def plane_from_seeds(self, seeds, *inputs):
        try:
            i, j = plane_point(parse_seeds(seeds)[0])
        except UserError as e:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), _message(e)
        return self.plane_from_numbers(i, j, *inputs)

    def plane_save_image(self, x, y, *inputs):
        try:
            result, _ = self._plane(float(x or 0), float(y or 0), *inputs, save=True)
        except Exception as e:  # noqa: BLE001
            return _message(e), gr.skip()
        return info_html(f"Saved {', '.join(p.name for p in result.paths)}"), result.infotext

    # ---------------------------------------------------------------- video
    def video(self, model, seeds, psi, class_name, frames, fps, loop, video_format, size, space,
              request: gr.Request = None):
        """Render an interpolation video: (gif path, mp4 path, message, infotext)."""
        job = self.backend.new_job("gan-video", owner_of(request), queue_user=queue_user_of(request))
        try:
            result = self.backend.gan_video(GanVideoRequest(
                model=model or None, seeds=seeds, truncation_psi=psi,
                class_name=None if class_name == ALL_CLASSES else class_name, frames=frames, fps=fps, loop=loop,
                format=video_format, size=size, space=space), job)
        except Exception as e:  # noqa: BLE001
            return gr.skip(), gr.skip(), _message(e), ""
        path = str(result.path)
        gif = result.request.format == "gif"
        note = info_html(f"{result.frame_count} frames → {result.path.name}")
        return (gr.Image(value=path if gif else None, visible=gif),
                gr.Video(value=None if gif else path, visible=not gif), note, result.infotext)

    # ---------------------------------------------------------------- portable state
    def export_latents(self, states):
        if not states:
            return None, error_html("latents: generate some images first")
        folder = Path(tempfile.mkdtemp(prefix="gan-latents-"))
        seeds = [s["seed"] for s in states if s.get("seed") is not None]
        path = folder / (f"gan-latents-{format_seeds(seeds)[:40] or 'imported'}.json".replace(",", "_"))
        path.write_text(export_text(states), encoding="utf-8")
        return str(path), info_html(f"Exported {len(states)} latent{'s' if len(states) != 1 else ''}.")

    def import_latents(self, path, current_model, request: gr.Request = None):
        """Restore a state from a latent file or a saved PNG: the fields, and the very same images."""
        keep = [gr.skip()] * 7
        try:
            states = read_states(path)
            title, note = self._model_for(states[0], current_model)
            gan_request = request_from_states(states, title)
            job = self.backend.new_job("gan", owner_of(request), queue_user=queue_user_of(request))
            result = self.backend.gan_sample(gan_request, job)
        except Exception as e:  # noqa: BLE001
            return *keep, gr.skip(), _message(e), "", gr.skip()
        r = result.request
        first = states[0]
        seeds = [s["seed"] for s in states if isinstance(s.get("seed"), int)]
        caps = capabilities(self.backend.gan_model(title)[1])
        class_value = caps.class_names[result.samples[0].class_index] if caps.conditional else None
        message = info_html(f"Restored {len(states)} latent{'s' if len(states) != 1 else ''} from {Path(path).name}."
                            + (f" {note}" if note else ""))
        return (title, format_seeds(seeds) if seeds else gr.skip(), r.truncation_psi,
                class_value if class_value is not None else gr.skip(),
                first.get("truncation_cutoff") if first.get("truncation_cutoff") is not None else gr.skip(),
                first.get("style_mix_seed"), r.style_mix_from,
                self._gallery(result), message, result.infotext, result.states)

    def _model_for(self, state: dict, current: str | None) -> tuple[str, str]:
        """The model a state was made with (by hash, then name), else the current one with a note."""
        for wanted in (state.get("model_hash"), state.get("model")):
            if wanted:
                try:
                    return self.backend.zoo_registry.find("gan", wanted).title, ""
                except UserError:
                    continue
        if not current:
            raise UserError("model: no GAN to render these latents with")
        return current, (f"It was made with {state.get('model') or 'another model'}, which is not in models/GAN: "
                         f"rendered with {current} instead.")
