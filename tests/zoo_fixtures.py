"""Tiny random-weight β-VAE and GAN files in the self-describing format, for tests of the tabs."""
from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_beta_vae(path: Path, latent_dim: int = 6, seed: int = 0) -> Path:
    from modules.zoo.beta_vae import BetaVAE, BetaVAEConfig, save_latent_model

    torch.manual_seed(seed)
    save_latent_model(path, BetaVAE(BetaVAEConfig(latent_dim=latent_dim, channels=(8, 16), image_size=32)).eval())
    return path


def make_tiny_gan(path: Path, seed: int = 0) -> Path:
    from modules.zoo.gan import GANConfig, Generator, save_gan

    torch.manual_seed(seed)
    generator = Generator(GANConfig(z_dim=8, w_dim=16, mapping_layers=2, channels=(16, 8, 8), image_size=32))
    save_gan(path, generator.eval())
    return path
