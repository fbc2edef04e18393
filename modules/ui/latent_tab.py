"""The Latent Explorer tab: β-VAE mode, SD VAE mode and GAN mode (a StyleGAN's W space), each a set of panels in modules/ui/latent/ that
build requests of modules/capabilities/latent and run them through the backend's runner."""
from __future__ import annotations

import gradio as gr

from modules.ui.latent.beta_vae_mode import BetaVaeMode
from modules.ui.latent.common import STYLE
from modules.ui.latent.gan_mode import GanLatentMode
from modules.ui.latent.sd_vae_panel import SdVaePanel


def build(backend) -> None:
    """The whole tab; called inside its gr.Tab."""
    gr.HTML(STYLE, padding=False, elem_id="latent_style")
    with gr.Tabs():
        with gr.Tab("β-VAE", id="latent_beta_vae"):
            BetaVaeMode(backend).build()
        with gr.Tab("SD VAE", id="latent_sd_vae_tab"):
            SdVaePanel(backend).build()
        with gr.Tab("GAN (W space)", id="latent_gan_tab"):
            GanLatentMode(backend).build()
