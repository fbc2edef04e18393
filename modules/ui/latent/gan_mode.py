"""GAN mode of the Latent Explorer: a StyleGAN network's W space as sliders, in the β-VAE mode's panel style.

A seed gives the base picture (z as NVIDIA's gen_images.py draws it, mapped to w, ψ applied); each slider moves
w along one latent direction (SeFa: closed form from the style weights; GANSpace: principal components of
sampled w; modules/capabilities/gan/directions.py) over the chosen layers. All sliders at 0 show the base
picture. Pictures come from the GAN Sampler's capability (modules/capabilities/gan), so they are the very
pictures the GAN tab shows for the same seed, ψ and directions.

Only StyleGAN files (NVIDIA's StyleGAN2/3 pickles or their conversions) have a W space with per-layer styles;
our own GANs feed their one w into the first layer only, so they have no directions here (the message says so).
"""
from __future__ import annotations

import gradio as gr

from modules.capabilities.gan import GanRequest, find_directions, gan, model_facts
from modules.capabilities.gan.directions import parse_direction_file
from modules.errors import UserError
from modules.ui.common import info_html
from modules.ui.components import Slider
from modules.ui.errors import user_errors
from modules.ui.latent.common import LIVE, run_job

DIRECTIONS = 8       # sliders
STRENGTH = 10.0      # each slider's reach, in units of w (SeFa's and GANSpace's editors use about ±10)


class GanLatentMode:
    def __init__(self, backend):
        self.backend = backend

    def build(self) -> None:
        titles = self.backend.gan_titles()
        with gr.Row(equal_height=True):
            self.model = gr.Dropdown(titles, value=titles[0] if titles else None, label="GAN (models/GAN)",
                                     elem_id="latent_gan_model", scale=6, allow_custom_value=True)
            self.refresh = gr.Button("↻", elem_id="latent_gan_refresh", scale=0, min_width=48)
        with gr.Row():
            with gr.Column(scale=3, elem_id="latent_gan_sliders"):
                with gr.Row(equal_height=True):
                    self.method = gr.Radio([("SeFa", "sefa"), ("GANSpace", "ganspace")], value="sefa",
                                           label="Directions", elem_id="latent_gan_method")
                    self.seed = gr.Number(value=0, precision=0, label="Seed", elem_id="latent_gan_seed", min_width=120)
                    self.psi = Slider(-1, 2, value=0.7, step=0.05, label="Truncation ψ", elem_id="latent_gan_psi")
                self.sliders = [Slider(-STRENGTH, STRENGTH, value=0.0, step=0.1, label=f"Direction {n + 1}",
                                       elem_id=f"latent_gan_d{n}") for n in range(DIRECTIONS)]
                with gr.Row(equal_height=True):
                    self.start = gr.Button("Start from the seed", elem_id="latent_gan_start", size="sm")
                    self.reset = gr.Button("Reset", elem_id="latent_gan_reset", size="sm")
            with gr.Column(scale=2):
                self.image = gr.Image(label="Picture", type="pil", format="png", interactive=False, height=288,
                                      elem_id="latent_gan_image")
                self.message = gr.HTML(show_label=False, elem_id="latent_gan_message")
                self.infotext = gr.Textbox(label="Parameters", lines=2, interactive=False, elem_id="latent_gan_infotext")
        self.directions = gr.State("")  # the found directions, as a direction file
        self.wire()

    def wire(self) -> None:
        begin = dict(fn=self.begin, inputs=[self.model, self.method, self.seed, self.psi],
                     outputs=[self.directions, self.image, self.message, self.infotext, *self.sliders], api_name=False)
        self.start.click(**begin)
        self.model.input(**begin)
        self.method.input(**begin)
        self.seed.submit(**begin)
        self.refresh.click(self.refreshed, inputs=self.model, outputs=self.model, api_name=False).then(**begin)
        live = [self.model, self.seed, self.psi, self.directions, *self.sliders]
        gr.on([s.input for s in self.sliders] + [self.psi.release], self.moved, inputs=live,
              outputs=[self.image, self.message, self.infotext], concurrency_id="latent_gan_live", **LIVE)
        self.reset.click(lambda: [0.0] * DIRECTIONS, outputs=self.sliders, api_name=False, queue=False).then(
            self.moved, inputs=live, outputs=[self.image, self.message, self.infotext], api_name=False)

    @user_errors
    def refreshed(self, current):
        titles = self.backend.gan_titles()
        return gr.Dropdown(choices=titles, value=current if current in titles else (titles[0] if titles else None))

    @user_errors
    def begin(self, model, method, seed, psi, http: gr.Request = None):
        """The model's directions (found once per model and method), the seed's picture, sliders at 0."""
        if not model:
            raise UserError("model: put a StyleGAN network (.pkl or converted .safetensors) into models/GAN")
        _, caps = model_facts(self.backend.manager, model)
        if not caps.stylegan:
            raise UserError(f"{model}: this GAN feeds its one w into the first layer only, so it has no latent "
                            "directions: pick a StyleGAN file")
        info, found = find_directions(self.backend.manager, model, method, None, DIRECTIONS)
        text = found.to_json(info.model_name, info.sha256 or "")
        image, infotext = self.render(model, seed, psi, text, [0.0] * DIRECTIONS, http)
        name = "SeFa" if found.method == "sefa" else "GANSpace"
        return {self.directions: text, self.image: image, self.infotext: infotext,
                self.message: info_html(f"{name}: {len(found.vectors)} directions over all {caps.num_ws} layers, "
                                        f"largest effect first. Move a slider."),
                **{slider: 0.0 for slider in self.sliders}}

    @user_errors
    def moved(self, http: gr.Request, model, seed, psi, directions, *strengths):
        """(The request comes first: gradio passes it only before the *values.)"""
        if not directions:
            raise UserError("directions: press Start from the seed first")
        image, infotext = self.render(model, seed, psi, directions, strengths, http)
        return {self.image: image, self.infotext: infotext, self.message: ""}

    def render(self, model, seed, psi, directions: str, strengths, http):
        _, caps = model_facts(self.backend.manager, model)
        found = parse_direction_file(directions, caps.w_dim)
        edits = [{"direction": found.vectors[n].tolist(), "strength": float(s or 0.0), "layers": list(found.layers)}
                 for n, s in enumerate(strengths) if n < len(found.vectors) and s]
        result = run_job(self.backend, gan, GanRequest(model=model, seeds=[int(seed or 0)], truncation_psi=psi,
                                                       directions=edits or None, save_images=False), http)
        return result.images[0], result.infotext
