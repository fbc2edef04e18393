"""Encode: an uploaded picture, a drawing or a data-set sample to the sliders (μ, with σ as each slider's
note). A PNG saved here restores its stored latent exactly, with the model it was made with."""
from __future__ import annotations

import gradio as gr

from modules.capabilities import latent
from modules.ui.common import info_html
from modules.ui.components import ImageFile
from modules.ui.errors import user_errors
from modules.ui.latent.common import latent_text, run_job
from modules.ui.latent.sliders import BetaVaeView
from modules.zoo import shapes


def _hex_colours() -> list[str]:
    return ["#%02x%02x%02x" % rgb for rgb in shapes.COLOURS.values()] + ["#000000", "#808080"]


def sample(seed):
    """A Shapes data-set image and its caption; sample #n is seed n."""
    try:
        seed = max(0, int(seed or 0))
    except (TypeError, ValueError):
        seed = 0
    data = shapes.make_dataset(1, seed=seed)
    return data.images[0], shapes.caption(data.scenes[0])


class EncodePanel:
    def __init__(self, view: BetaVaeView):
        self.view = view

    def build(self) -> None:
        first_sample, first_caption = sample(0)
        colours = _hex_colours()
        with gr.Row():
            with gr.Column():
                with gr.Tabs():
                    with gr.Tab("Upload"):
                        self.upload = ImageFile(label="Image (a PNG saved here restores its latent)", type="filepath",
                                                image_mode=None, sources=["upload", "clipboard"], height=220,
                                                elem_id="latent_upload")
                        self.encode_upload = gr.Button("Encode", variant="primary", elem_id="latent_encode_upload")
                    with gr.Tab("Draw"):
                        self.sketch = gr.Sketchpad(label="Draw a shape (pick the brush first)", type="pil",
                                                   canvas_size=(256, 256), layers=False, format="png",
                                                   brush=gr.Brush(colors=colours, default_color=colours[0],
                                                                  default_size=18),
                                                   elem_id="latent_sketch")
                        self.encode_sketch = gr.Button("Encode drawing", variant="primary",
                                                       elem_id="latent_encode_sketch")
                    with gr.Tab("Data set"):
                        with gr.Row():
                            self.sample_seed = gr.Number(value=0, precision=0, label="Shapes sample #",
                                                         elem_id="latent_sample_seed", minimum=0)
                            self.sample = gr.Image(first_sample, label="Sample", type="numpy", interactive=False,
                                                   height=128, elem_id="latent_sample")
                        self.sample_caption = gr.Markdown(first_caption, elem_id="latent_sample_caption")
                        self.encode_sample = gr.Button("Encode sample", variant="primary",
                                                       elem_id="latent_encode_sample")
            with gr.Column():
                with gr.Row():
                    self.encoder_input = gr.Image(label="What the encoder saw", type="pil", format="png",
                                                  interactive=False, height=160, elem_id="latent_input")
                    self.reconstruction = gr.Image(label="Decoded μ", type="pil", format="png", interactive=False,
                                                   height=160, elem_id="latent_reconstruction")
                gr.Markdown("Encoding sets the sliders to μ; each slider's note shows σ of that dimension. "
                            "Colour images of any size are converted to RGB and resized to the model's size.")

    def wire(self) -> None:
        view = self.view
        # The API's order first (latent_encode: μ, σ, decoded μ, message, model, what the encoder saw).
        outputs = [view.latent, view.sigma, self.reconstruction, view.message, view.model, self.encoder_input,
                   view.image, *view.sliders]
        clear = dict(fn=self.cleared, outputs=[self.encoder_input, self.reconstruction], queue=False, api_name=False)
        self.encode_upload.click(**clear).then(self.encode, inputs=[view.model, self.upload], outputs=outputs,
                                               api_name="latent_encode")
        # Dropping an image in encodes it at once (a PNG saved here restores its sliders).
        for event, source in ((self.upload.upload, self.upload), (self.encode_sketch.click, self.sketch),
                              (self.encode_sample.click, self.sample)):
            event(**clear).then(self.encode, inputs=[view.model, source], outputs=outputs, api_name=False)
        self.sample_seed.change(sample, inputs=self.sample_seed, outputs=[self.sample, self.sample_caption],
                                api_name=False, show_progress="hidden")

    def cleared(self):
        """Before each encoding: a failed one must not leave the previous picture as if it were this one's."""
        return {self.encoder_input: None, self.reconstruction: None}

    @user_errors
    def encode(self, model, image, http: gr.Request = None):
        """latent_encode: (model, image) -> (μ as JSON list, σ as JSON list, decoded μ, message, model, input, …)."""
        view = self.view
        result = run_job(view.backend, latent.ENCODE, latent.LatentEncodeRequest(model or None, image), http)
        if result.restored:
            note = "Restored the latent stored in this PNG" + (f" ({result.note})" if result.note else "") + "."
        elif result.note:
            note = f"This PNG's latent does not fit ({result.note}); encoded its pixels instead."
        else:
            note = ""
        sigma = None if result.restored else result.sigma
        return {**view.slider_updates(result.labels, result.mu, sigma), view.latent: latent_text(result.mu),
                view.sigma: latent_text(sigma) if sigma is not None else "", self.reconstruction: result.reconstruction,
                view.message: info_html(note) if note else "", self.encoder_input: result.input_image,
                view.model: gr.Dropdown(value=result.model), view.image: result.reconstruction}
