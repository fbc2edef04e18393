"""The GAN Sampler's handlers: each builds a request, runs it through the runner (backend.run) and returns
{component: value}. Errors leave as toasts (@user_errors). The layout is in gan_tab.py."""
from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path

import gradio as gr
from PIL import Image

from modules.capabilities.gan import (ALL_CLASSES, GanCapabilities, GanProjectRequest, GanRequest, GanVideoRequest,
                                      gan, gan_project, gan_video, model_facts)
from modules.capabilities.gan.state import export_text, read_states, request_from_states
from modules.errors import UserError
from modules.generation.seeds import format_seeds, nearest_plane_seed, parse_seeds, plane_point, plane_square
from modules.ui.common import info_html, owner_of, queue_user_of
from modules.ui.errors import user_errors

log = logging.getLogger(__name__)
NO_MODEL = GanCapabilities(0, (), 0, 0)
FIRST_SEED = 0  # the first picture: this seed of every class
DIRECTION_SLIDERS = 5


class GanHandlers:
    """Mixed into GanTab, whose build() makes the components these handlers read and write."""

    def capabilities_of(self, title: str | None) -> GanCapabilities:
        if not title:
            return NO_MODEL
        try:
            return model_facts(self.backend.manager, title)[1]
        except UserError:
            return NO_MODEL

    def _run(self, capability, request, gr_request: gr.Request | None):
        return self.backend.runner.run(capability, request, owner=owner_of(gr_request),
                                       queue_user=queue_user_of(gr_request))

    def _request(self, model, psi, class_name, cutoff, mix_seed, mix_from, mix_to=None, **values) -> GanRequest:
        caps = self.capabilities_of(model)
        layered = caps.layer_styles  # hidden controls keep values that must not reach a model without layers
        mixing = {}
        text = str(mix_seed if mix_seed is not None else "").strip()
        if layered and text:  # one seed mixes into every image; several ("5,6,7") make a style-mixing grid
            several = any(mark in text for mark in ",- ")
            mixing = {"style_mix_seeds": text} if several else {"style_mix_seed": text}
            if mix_to is not None and mix_to < caps.num_ws:
                mixing["style_mix_to"] = mix_to
        return GanRequest(model=model or None, truncation_psi=psi, class_name=class_name,
                          truncation_cutoff=cutoff if layered and cutoff is not None and cutoff < caps.num_ws else None,
                          style_mix_from=1 if mix_from is None else mix_from, **mixing, **values)

    @staticmethod
    def gallery_items(result) -> list:
        items = list(zip(result.images, result.captions))
        if result.grid is not None:
            items.insert(0, (result.grid, f"Grid · {len(result.images)} images"))
        return items

    # ------------------------------------------------------------ the first picture
    def first_grid(self) -> list:
        """What the gallery opens on: one seed of every class (the first classes, for a model with many), so
        a newcomer sees at once what the model makes. Empty when there is no GAN to show."""
        titles = self.titles()
        if not titles:
            return []
        try:
            caps = self.capabilities_of(titles[0])
            class_name = ALL_CLASSES if caps.conditional else None
            result = self.backend.run(gan, GanRequest(model=titles[0], seeds=str(FIRST_SEED), class_name=class_name,
                                                      save_images=False))
        except UserError as e:  # the page still opens; the notice above says what is wrong with the folder
            log.warning("GAN Sampler: no first picture: %s", e)
            return []
        if result.grid is None:
            return self.gallery_items(result)
        return [(result.grid, f"Seed {FIRST_SEED} of every class: pick one under Class, then Generate")]

    # ------------------------------------------------------------ sampling
    def sample_request(self, model, seeds, psi, class_name, cutoff, mix_seed, mix_from, noise_mode="const",
                       translate_x=0.0, translate_y=0.0, rotate=0.0, mix_to=None, directions_file="",
                       *strengths) -> GanRequest:
        """The request of the tab's sampling controls (sample_inputs(), in order). Noise mode (StyleGAN) and
        translate/rotate (StyleGAN3) reach only the models that have them."""
        caps = self.capabilities_of(model)
        extra = self.stylegan_values(caps, noise_mode, translate_x, translate_y, rotate)
        if caps.stylegan and directions_file:
            edits = self.edits(directions_file, strengths, caps.w_dim)
            if edits:
                extra["directions"] = edits
        return self._request(model, psi, class_name, cutoff, mix_seed, mix_from, mix_to, seeds=seeds, **extra)

    @staticmethod
    def stylegan_values(caps: GanCapabilities, noise_mode, translate_x, translate_y, rotate) -> dict:
        """Noise mode for StyleGAN files, translate/rotate for StyleGAN3: hidden controls reach no other model."""
        extra = {}
        if caps.stylegan:
            extra["noise_mode"] = noise_mode or "const"
        if caps.input_transform:
            extra.update(translate=(translate_x or 0.0, translate_y or 0.0), rotate=rotate or 0.0)
        return extra

    @staticmethod
    def edits(directions_file: str, strengths, w_dim: int) -> list[dict]:
        """The sliders' edits: direction n of the found (or loaded) directions moved by slider n's strength."""
        from modules.capabilities.gan.directions import parse_direction_file
        found = parse_direction_file(directions_file, w_dim)
        return [{"direction": found.vectors[n].tolist(), "strength": float(s), "layers": list(found.layers)}
                for n, s in enumerate(strengths) if n < len(found.vectors) and s]

    @user_errors
    def sample(self, model, seeds, psi, class_name, cutoff, mix_seed, mix_from, noise_mode="const", translate_x=0.0,
               translate_y=0.0, rotate=0.0, mix_to=None, directions_file="", direction_1=0.0, direction_2=0.0,
               direction_3=0.0, direction_4=0.0, direction_5=0.0, request: gr.Request = None):
        """Sample a grid of seeds × class: the gallery (grid first), the infotext and the states to export."""
        strengths = (direction_1, direction_2, direction_3, direction_4, direction_5)  # DIRECTION_SLIDERS of them
        result = self._run(gan, self.sample_request(model, seeds, psi, class_name, cutoff, mix_seed, mix_from,
                                                    noise_mode, translate_x, translate_y, rotate, mix_to,
                                                    directions_file, *strengths), request)
        return {self.gallery: self.gallery_items(result), self.message: "", self.infotext: result.infotext,
                self.last_states: result.states}

    @user_errors
    def sample_current(self, projected, model, seeds, psi, class_name, cutoff, mix_seed, mix_from, noise_mode="const",
                       translate_x=0.0, translate_y=0.0, rotate=0.0, mix_to=None, directions_file="", direction_1=0.0,
                       direction_2=0.0, direction_3=0.0, direction_4=0.0, direction_5=0.0,
                       request: gr.Request = None):
        """What a direction slider moves: the projected latent when there is one (Project made it the current
        picture), else the seeds."""
        strengths = (direction_1, direction_2, direction_3, direction_4, direction_5)
        built = self.sample_request(model, seeds, psi, class_name, cutoff, mix_seed, mix_from, noise_mode,
                                    translate_x, translate_y, rotate, mix_to, directions_file, *strengths)
        if projected:
            built.latents, built.style_mix_seed, built.style_mix_seeds = [projected], None, None
        result = self._run(gan, built, request)
        return {self.gallery: self.gallery_items(result), self.message: "", self.infotext: result.infotext,
                self.last_states: result.states}

    # ------------------------------------------------------------ image -> latent
    @user_errors
    def project_image(self, path, model, class_name, steps, w_plus, progress=gr.Progress(), request: gr.Request = None):
        """Project the uploaded picture: the found latent becomes the current picture (the direction sliders
        move it; Export keeps it). Stop interrupts between steps and keeps the best latent so far."""
        from modules.image_limits import open_image

        if not path:
            raise UserError("image: upload the picture to project")
        caps = self.capabilities_of(model)
        with open_image(path, "image") as image:
            picture = image.convert("RGB")
        job = self.backend.new_job(gan_project.name, owner_of(request), queue_user=queue_user_of(request))
        report = job.report_step

        def report_step(step: int) -> None:  # the job's progress, also as the tab's progress bar
            progress((step, job.steps), desc="Projecting")
            report(step)
        job.report_step = report_step
        result = self.backend.runner.run(gan_project, GanProjectRequest(
            model=model or None, image=picture, steps=steps, w_plus=bool(w_plus) and caps.layer_styles,
            class_name=None if class_name == ALL_CLASSES else class_name), job)
        if result.latent is None:
            return {self.message: info_html("Interrupted before the first step: no latent.")}
        shown = self._run(gan, GanRequest(model=model or None, latents=[result.latent], save_images=False,
                                          class_name=None if class_name == ALL_CLASSES else class_name), request)
        stopped = f"Stopped after {result.steps_done} steps" if result.interrupted else f"{result.steps_done} steps"
        return {self.projected: result.latent, self.gallery: [(shown.images[0], "Projected latent"),
                                                              (result.target, "Target")],
                self.infotext: shown.infotext, self.last_states: shown.states,
                self.message: info_html(f"{stopped} ({result.loss} loss): PSNR {result.psnr[0]:.1f} → "
                                        f"{max(result.psnr):.1f} dB. The "
                                        "direction sliders now move this picture; Generate goes back to seeds."),
                **{slider: 0.0 for slider in self.direction_sliders}}

    @user_errors
    def stop_projection(self, request: gr.Request = None):
        self.backend.jobs.interrupt(owner_of(request))
        return {}

    # ------------------------------------------------------------ latent directions
    @user_errors
    def directions_found(self, model, class_name, method, start, end):
        """SeFa's or GANSpace's directions for the layers [start, end): kept as a direction file, sliders at 0."""
        from modules.capabilities.gan import find_directions
        from modules.capabilities.gan.run import class_indices

        caps = self.capabilities_of(model)
        (class_index,) = class_indices(None if class_name == ALL_CLASSES else class_name, caps)
        info, found = find_directions(self.backend.manager, model or None, method, (int(start), int(end)),
                                      DIRECTION_SLIDERS, class_index)
        name = "SeFa" if found.method == "sefa" else "GANSpace"
        return {self.directions_file: found.to_json(info.model_name, info.sha256 or ""),
                self.message: info_html(f"{name}: {len(found.vectors)} directions for layers {found.layers[0]} to "
                                        f"{found.layers[1] - 1}. Move a slider."),
                **{slider: 0.0 for slider in self.direction_sliders}}

    @user_errors
    def directions_saved(self, text):
        if not text:
            raise UserError("Latent directions: find or load directions first")
        folder = Path(tempfile.mkdtemp(prefix="gan-directions-"))
        path = folder / f"directions-{json.loads(text).get('method', 'file')}.json"
        path.write_text(text, encoding="utf-8")
        return {self.directions_download: str(path), self.message: ""}

    @user_errors
    def directions_loaded(self, path, model):
        from modules.capabilities.gan.directions import parse_direction_file
        from modules.capabilities.gan.state import MAX_FILE_BYTES

        if not path:
            return {}
        file = Path(path)
        if file.stat().st_size > MAX_FILE_BYTES:
            raise UserError(f"{file.name}: too big for a direction file")
        text = file.read_text(encoding="utf-8", errors="replace")
        found = parse_direction_file(text, self.capabilities_of(model).w_dim, file.name)
        return {self.directions_file: text,
                self.message: info_html(f"Loaded {len(found.vectors)} directions from {file.name}."),
                **{slider: 0.0 for slider in self.direction_sliders}}

    @user_errors
    def shift(self, text: str, direction: int):
        from modules.generation.seeds import shift_seeds

        return {self.seeds: shift_seeds(text, direction)}

    # ------------------------------------------------------------ seed plane
    # The pad's settings (gan_tab.plane_settings()): model, psi, class, cutoff, mix seed, mix from, then noise
    # mode, translate x/y, rotate and mix to, so the pad shows what Generate would.
    def _plane(self, x, y, settings, request, save: bool = False):
        model, psi, class_name, cutoff, mix_seed, mix_from, noise_mode, translate_x, translate_y, rotate, mix_to = \
            settings
        extra = self.stylegan_values(self.capabilities_of(model), noise_mode, translate_x, translate_y, rotate)
        result = self._run(gan, self._request(model, psi, class_name, cutoff, mix_seed, mix_from, mix_to,
                                              position=(x, y), save_images=save, **extra), request)
        image = result.grid or result.images[0]
        factor = max(1, 256 // max(image.size))  # crisp pixels at a readable size
        return result, image.resize((image.width * factor, image.height * factor), Image.NEAREST)

    def _plane_at(self, x, y, settings, request) -> dict:
        x, y = max(0.0, float(x or 0)), max(0.0, float(y or 0))
        _, image = self._plane(x, y, settings, request)
        return {self.pad: f"{x:.3f},{y:.3f}", self.plane_x: round(x, 3), self.plane_y: round(y, 3),
                self.plane_image: image, self.message: ""}

    # Gradio passes gr.Request by its parameter's place, so these name every input (no *args).
    @user_errors
    def plane_from_pad(self, pad_value, model, psi, class_name, cutoff, mix_seed, mix_from, noise_mode="const",
                       translate_x=0.0, translate_y=0.0, rotate=0.0, mix_to=None, request: gr.Request = None):
        try:
            x, y = (float(v) for v in str(pad_value).split(","))
        except ValueError:
            raise UserError("seed plane: the pad sent no position; drag again") from None
        values = self._plane_at(x, y, (model, psi, class_name, cutoff, mix_seed, mix_from, noise_mode, translate_x,
                                       translate_y, rotate, mix_to), request)
        del values[self.pad]  # the pad holds its own value while it is dragged
        return values

    @user_errors
    def plane_from_numbers(self, x, y, model, psi, class_name, cutoff, mix_seed, mix_from, noise_mode="const",
                           translate_x=0.0, translate_y=0.0, rotate=0.0, mix_to=None, request: gr.Request = None):
        return self._plane_at(x, y, (model, psi, class_name, cutoff, mix_seed, mix_from, noise_mode, translate_x,
                                     translate_y, rotate, mix_to), request)

    @user_errors
    def plane_snap(self, x, y, model, psi, class_name, cutoff, mix_seed, mix_from, noise_mode="const",
                   translate_x=0.0, translate_y=0.0, rotate=0.0, mix_to=None, request: gr.Request = None):
        """To the nearest seed: the point, and the seed in the Seeds box (Generate shows it; Render video
        walks the square of the plane from it)."""
        x, y = max(0.0, float(x or 0)), max(0.0, float(y or 0))
        i, j = math.floor(x + 0.5), math.floor(y + 0.5)  # as nearest_plane_seed (round() takes 0.5 to 0)
        settings = (model, psi, class_name, cutoff, mix_seed, mix_from, noise_mode, translate_x, translate_y, rotate,
                    mix_to)
        return {**self._plane_at(i, j, settings, request), self.seeds: str(nearest_plane_seed(x, y))}

    @user_errors
    def plane_from_seeds(self, seeds, model, psi, class_name, cutoff, mix_seed, mix_from, noise_mode="const",
                         translate_x=0.0, translate_y=0.0, rotate=0.0, mix_to=None, request: gr.Request = None):
        i, j = plane_point(parse_seeds(seeds)[0])
        return self._plane_at(i, j, (model, psi, class_name, cutoff, mix_seed, mix_from, noise_mode, translate_x,
                                     translate_y, rotate, mix_to), request)

    @user_errors
    def plane_save_image(self, x, y, model, psi, class_name, cutoff, mix_seed, mix_from, noise_mode="const",
                         translate_x=0.0, translate_y=0.0, rotate=0.0, mix_to=None, request: gr.Request = None):
        x, y = max(0.0, float(x or 0)), max(0.0, float(y or 0))
        result, _ = self._plane(x, y, (model, psi, class_name, cutoff, mix_seed, mix_from, noise_mode, translate_x,
                                       translate_y, rotate, mix_to), request, save=True)
        return {self.message: info_html(f"Saved {', '.join(p.name for p in result.paths)}"),
                self.infotext: result.infotext}

    # ------------------------------------------------------------ video
    @user_errors
    def video(self, model, seeds, psi, class_name, frames, fps, loop, video_format, size, space, cutoff=None,
              mix_seed="", mix_from=1, noise_mode="const", translate_x=0.0, translate_y=0.0, rotate=0.0, mix_to=None,
              request: gr.Request = None):
        """Render an interpolation video. One seed (after Snap, say) is not an error: the video walks the
        square of the seed plane from that seed, the neighbourhood the pad shows."""
        keys = parse_seeds(seeds)
        note = ""
        if len(keys) == 1:
            keys = plane_square(keys[0])
            note = f" (one seed: round the seed plane's square {format_seeds(keys)})"
        caps = self.capabilities_of(model)
        layers = {}
        if caps.layer_styles:  # as the sampler's: one mix seed for every frame (a grid of mix seeds is no video)
            if cutoff is not None and cutoff < caps.num_ws:
                layers["truncation_cutoff"] = cutoff
            text = str(mix_seed if mix_seed is not None else "").strip()
            if text:
                if any(mark in text for mark in ",- "):
                    raise UserError("style_mix_seed: a video takes one style mix seed, not a grid")
                layers.update(style_mix_seed=text, style_mix_from=1 if mix_from is None else mix_from)
                if mix_to is not None and mix_to < caps.num_ws:
                    layers["style_mix_to"] = mix_to
        result = self._run(gan_video, GanVideoRequest(
            model=model or None, seeds=keys, truncation_psi=psi,
            class_name=None if class_name == ALL_CLASSES else class_name, frames=frames, fps=fps, loop=loop,
            format=video_format, size=size, space=space, **layers,
            **self.stylegan_values(caps, noise_mode, translate_x, translate_y, rotate)), request)
        if result.path is None:  # interrupted
            return {self.message: info_html("Interrupted: no video.")}
        path, gif = str(result.path), result.request.format == "gif"
        return {self.video_gif: gr.Image(value=path if gif else None, visible=gif),
                self.video_mp4: gr.Video(value=None if gif else path, visible=not gif),
                self.message: info_html(f"{result.frame_count} frames → {result.path.name}{note}"),
                self.infotext: result.infotext}

    # ------------------------------------------------------------ portable state
    @user_errors
    def export_latents(self, states):
        if not states:
            raise UserError("latents: generate some images first")
        folder = Path(tempfile.mkdtemp(prefix="gan-latents-"))
        seeds = [s["seed"] for s in states if s.get("seed") is not None]
        path = folder / (f"gan-latents-{format_seeds(seeds)[:40] or 'imported'}.json".replace(",", "_"))
        path.write_text(export_text(states), encoding="utf-8")
        return {self.export_file: str(path),
                self.message: info_html(f"Exported {len(states)} latent{'s' if len(states) != 1 else ''}.")}

    @user_errors
    def import_latents(self, path, current_model, request: gr.Request = None):
        """Restore a state from a latent file or a saved PNG: the fields, and the very same images."""
        states = read_states(path)
        title, note = self._model_for(states[0], current_model)
        result = self._run(gan, request_from_states(states, title), request)
        first, r = states[0], result.request
        seeds = [s["seed"] for s in states if isinstance(s.get("seed"), int)]
        mix_seed = first.get("style_mix_seed")
        values = {self.model: title, self.psi: r.truncation_psi, self.mix_seed: "" if mix_seed is None else str(mix_seed),
                  self.mix_from: r.style_mix_from, self.gallery: self.gallery_items(result),
                  self.infotext: result.infotext, self.last_states: result.states,
                  self.message: info_html(f"Restored {len(states)} latent{'s' if len(states) != 1 else ''} from "
                                          f"{Path(path).name}." + (f" {note}" if note else ""))}
        if seeds:
            values[self.seeds] = format_seeds(seeds)
        if result.states and result.states[0].get("class") is not None:
            values[self.class_name] = result.states[0]["class"]
        if first.get("truncation_cutoff") is not None:
            values[self.cutoff] = first["truncation_cutoff"]
        caps = self.capabilities_of(title)
        if caps.stylegan:  # the StyleGAN controls too, so Generate renders the imported pictures again
            values[self.noise_mode] = r.noise_mode
            values[self.mix_to] = caps.num_ws if r.style_mix_to is None else r.style_mix_to
        if caps.input_transform:
            values.update({self.translate_x: r.translate[0], self.translate_y: r.translate[1], self.rotate: r.rotate})
        return values

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
