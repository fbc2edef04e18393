"""The Gradio app: one tab per tool, each with the model picker it needs. Layout and wiring only."""
from __future__ import annotations

import gradio as gr

from modules.backend import Backend
from modules.security.gradio_folder import DELETE_CACHE
from modules.ui import checkpoint_picker, extensions_tab, latent_tab, models_tab, pnginfo_tab, settings_tab
from modules.ui.extras_tab import ExtrasTab
from modules.ui.gan_tab import GanTab
from modules.ui.generation_tab import selected_index
from modules.ui.img2img_tab import Img2ImgTab, gallery_picture
from modules.ui.script_controls import gan_script_area
from modules.ui.txt2img_tab import Txt2ImgTab
from modules.version import APP_NAME

# System fonts only: the app must render with no internet (no Google Fonts).
THEME = gr.themes.Default(font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                          font_mono=["ui-monospace", "Consolas", "monospace"])


def build_ui(backend: Backend) -> gr.Blocks:
    # Extensions build their tabs in their own gr.Blocks, outside this one (as in A1111); rendered below.
    extension_tabs = backend.extensions.ui_tabs()
    # Uploads and produced files are removed an hour after they were written (see gradio_folder.py).
    with gr.Blocks(title=APP_NAME, analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        with gr.Tabs() as tabs:
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                checkpoint = checkpoint_picker.build(backend, demo)
                modules = checkpoint_picker.build_component_picker(backend)
                txt2img = Txt2ImgTab(backend, checkpoint, modules)
                txt2img.build()
            with gr.Tab("img2img", id="img2img", elem_id="tab_img2img"):
                img2img = Img2ImgTab(backend, checkpoint_picker.build(backend, demo, same_as=checkpoint),
                                     checkpoint_picker.build_component_picker(backend, same_as=modules,
                                                                              elem_id="img2img_sd_modules",
                                                                              render=False))
                img2img.build()
                # A pick in either tab's checkpoint picker sets the family's samplers, steps and CFG in both.
                checkpoint.input(img2img.family_values, inputs=[checkpoint, img2img.sampler],
                                 outputs=img2img.family_outputs(), api_name=False, queue=False)
                img2img.checkpoint.input(txt2img._checkpoint_picked, inputs=[img2img.checkpoint, txt2img.sampler],
                                         outputs=[txt2img.width, txt2img.height, *txt2img.family_outputs()],
                                         api_name=False, queue=False)
            with gr.Tab("GAN Sampler", id="gan", elem_id="tab_gan"):
                gan = GanTab(backend)
                gan.build()
                gan_script_area(backend, gan)
                gan_send = gr.Button("Send to img2img", elem_id="gan_send_to_img2img", size="sm")
                gan_picked = gr.State(0)
                gan.gallery.select(selected_index, outputs=gan_picked, api_name=False, queue=False)
            with gr.Tab("Latent Explorer", id="latent", elem_id="tab_latent"):
                latent_tab.build(backend)
            with gr.Tab("Extras", id="extras", elem_id="tab_extras"):
                ExtrasTab(backend).build()
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                pnginfo_tab.build(txt2img, tabs, "txt2img", img2img)
            with gr.Tab("Models", id="models", elem_id="tab_models") as tab:
                models_tab.build(backend, tab)
            for extension, blocks, title, elem_id in extension_tabs:
                with gr.Tab(title, id=elem_id, elem_id=f"tab_{elem_id}"):
                    extensions_tab.render_tab(extension, blocks)
            with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):
                extensions_tab.build(backend.extensions, demo)
            with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
                settings_tab.build(backend, demo)

        img2img.send_from(txt2img.send_to_img2img, [txt2img.gallery, txt2img.selected, txt2img.infotext],
                          gallery_picture, tabs)
        # The GAN's picture only: its parameters are no prompt.
        img2img.send_from(gan_send, [gan.gallery, gan_picked], lambda g, n: (gallery_picture(g, n, "")[0], ""), tabs)
        demo.load(None, js=extensions_tab.assets_js(backend.extensions))  # extensions' style.css, javascript/
    return demo
