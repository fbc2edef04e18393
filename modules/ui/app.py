"""The Gradio app: a checkpoint picker on top, one tab per tool. Layout and wiring only."""
from __future__ import annotations

import gradio as gr

from modules.backend import Backend
from modules.security.gradio_folder import DELETE_CACHE
from modules.ui import extensions_tab, latent_tab, models_tab, pnginfo_tab
from modules.public_paths import scrub, shown
from modules.preferences import CHECKPOINT
from modules.ui.common import CSS, login_name
from modules.ui.gan_tab import GanTab
from modules.ui.script_controls import gan_script_area
from modules.ui.txt2img_tab import Txt2ImgTab
from modules.version import APP_NAME

# System fonts only: the app must render with no internet (no Google Fonts).
THEME = gr.themes.Default(font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                          font_mono=["ui-monospace", "Consolas", "monospace"])


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


def build_ui(backend: Backend) -> gr.Blocks:
    # Extensions build their tabs in their own gr.Blocks, outside this one (as in A1111); rendered below.
    extension_tabs = backend.extensions.ui_tabs()
    # Uploads and produced files are removed an hour after they were written (see gradio_folder.py).
    with gr.Blocks(title=APP_NAME, analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        with gr.Row(equal_height=True):
            checkpoint = gr.Dropdown(backend.checkpoint_titles(), value=backend.default_checkpoint_title(),
                                     label="Stable Diffusion checkpoint", elem_id="sd_checkpoint", scale=6,
                                     allow_custom_value=True)  # API callers may name a checkpoint by its short name
            refresh = gr.Button("↻", elem_id="refresh_checkpoints", scale=0, min_width=48)
        notice = gr.Markdown(no_checkpoint_message(backend) if not backend.registry.usable() else "",
                             elem_id="checkpoint_notice")
        with gr.Tabs() as tabs:
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                txt2img = Txt2ImgTab(backend, checkpoint)
                txt2img.build()
            with gr.Tab("GAN Sampler", id="gan", elem_id="tab_gan"):
                gan = GanTab(backend)
                gan.build()
                gan_script_area(backend, gan)
            with gr.Tab("Latent Explorer", id="latent", elem_id="tab_latent"):
                latent_tab.build(backend)
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                pnginfo_tab.build(txt2img, tabs, "txt2img")
            with gr.Tab("Models", id="models", elem_id="tab_models") as tab:
                models_tab.build(backend, tab)
            for extension, blocks, title, elem_id in extension_tabs:
                with gr.Tab(title, id=elem_id, elem_id=f"tab_{elem_id}"):
                    extensions_tab.render_tab(extension, blocks)
            with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):
                extensions_tab.build(backend.extensions, demo)

        def on_refresh(current):
            titles = backend.refresh_checkpoints()
            value = current if current in titles else backend.default_checkpoint_title()
            message = no_checkpoint_message(backend) if not titles else ""
            return gr.Dropdown(choices=titles, value=value), message

        refresh.click(on_refresh, inputs=checkpoint, outputs=[checkpoint, notice], api_name="refresh_checkpoints")
        remember_checkpoint_pick(backend, demo, checkpoint)
        demo.load(None, js=extensions_tab.assets_js(backend.extensions))  # extensions' style.css, javascript/
    return demo
