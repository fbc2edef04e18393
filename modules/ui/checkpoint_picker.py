"""The Stable Diffusion checkpoint picker: built inside the tabs that use a checkpoint (txt2img), not above
tabs where it means nothing (GAN Sampler, Latent Explorer), with its ↻ button and each user's remembered pick."""
from __future__ import annotations

import gradio as gr

from modules.backend import Backend
from modules.preferences import CHECKPOINT
from modules.public_paths import scrub, shown
from modules.ui.common import login_name


def no_checkpoint_message(backend: Backend) -> str:
    folder = shown(backend.checkpoint_folder)
    lines = [f"**No usable checkpoint yet.** Put Stable Diffusion `.safetensors` files or diffusers folders "
             f"(with `model_index.json`) into `{folder}`, then press ↻."]
    for c in backend.registry.unusable():
        lines.append(f"- `{c.name}` cannot be used: {scrub(c.error or '')}")
    return "\n".join(lines)


def remember_checkpoint_pick(backend: Backend, demo: gr.Blocks, checkpoint: gr.Dropdown) -> None:
    """A logged-in user's pick in the checkpoint dropdown is that user's own default: kept for their next
    visit, and never changing anyone else's (server-wide options are an admin's, POST /sdapi/v1/options)."""
    preferences = backend.settings.preferences  # the settings service's: the API reads the same picks

    def remember(title, request: gr.Request):
        if title in backend.checkpoint_titles():
            preferences.set(login_name(request), CHECKPOINT, title)

    def restore(request: gr.Request):
        title = preferences.get(login_name(request), CHECKPOINT)
        return gr.Dropdown(value=title) if title in backend.checkpoint_titles() else gr.skip()

    checkpoint.input(remember, inputs=checkpoint, api_name=False, queue=False)
    demo.load(restore, outputs=checkpoint, api_name=False, queue=False)


def build(backend: Backend, demo: gr.Blocks, same_as: gr.Dropdown | None = None) -> gr.Dropdown:
    """The picker row and its notice (where the folder is empty); returns the dropdown. `same_as`: the picker
    of another tab (txt2img's, for img2img): a pick in either shows in both."""
    prefix = "" if same_as is None else "img2img_"
    with gr.Row(equal_height=True):
        checkpoint = gr.Dropdown(backend.checkpoint_titles(), value=backend.default_checkpoint_title(),
                                 label="Stable Diffusion checkpoint", elem_id=f"{prefix}sd_checkpoint", scale=6,
                                 allow_custom_value=True)  # API callers may name a checkpoint by its short name
        refresh = gr.Button("↻", elem_id=f"{prefix}refresh_checkpoints", scale=0, min_width=48)
    notice = gr.Markdown(no_checkpoint_message(backend) if not backend.registry.usable() else "",
                         elem_id=f"{prefix}checkpoint_notice")

    def on_refresh(current):
        titles = backend.refresh_checkpoints()
        value = current if current in titles else backend.default_checkpoint_title()
        message = no_checkpoint_message(backend) if not titles else ""
        return gr.Dropdown(choices=titles, value=value), message

    refresh.click(on_refresh, inputs=checkpoint, outputs=[checkpoint, notice],
                  api_name="refresh_checkpoints" if same_as is None else False, show_progress="hidden")
    remember_checkpoint_pick(backend, demo, checkpoint)
    if same_as is not None:  # .input: the user's picks only, so the two never echo each other
        checkpoint.input(lambda title: title, inputs=checkpoint, outputs=same_as, api_name=False, queue=False)
        same_as.input(lambda title: title, inputs=same_as, outputs=checkpoint, api_name=False, queue=False)
    return checkpoint


def build_component_picker(backend: Backend, same_as: gr.Dropdown | None = None, elem_id: str = "sd_modules",
                           render: bool = True) -> gr.Dropdown:
    """Forge's "VAE / Text Encoder": the VAE and text encoder files (models/VAE, models/text_encoder) a
    transformer-only checkpoint (FLUX.1 as BFL publishes it, SD 3.5 without its text encoders) is completed
    with. Which file is which is told from its tensors; a checkpoint that has its own takes none.
    `same_as`: another tab's picker that this one mirrors (txt2img's, for img2img), as the checkpoints do.
    `render=False`: placed later by the tab (img2img's, in its settings column: the picture stays put)."""
    picker = gr.Dropdown(backend.component_file_names(), value=[], multiselect=True, label="VAE / Text Encoder",
                         elem_id=elem_id, info="for checkpoints without their own VAE or text encoders",
                         render=render)
    if same_as is not None:  # .input: the user's picks only, so the two never echo each other
        picker.input(lambda names: names, inputs=picker, outputs=same_as, api_name=False, queue=False)
        same_as.input(lambda names: names, inputs=same_as, outputs=picker, api_name=False, queue=False)
    return picker
