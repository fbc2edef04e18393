"""β-VAE for 32x32 Shapes images: a small conv encoder/decoder around an 8-16 dim Gaussian latent.

    encode(images [N,3,32,32] in [-1,1]) -> (mu, logvar)   each [N, latent_dim]
    decode(z [N, latent_dim])             -> images [N,3,32,32] in [-1,1]

Training (train/beta_vae.py) minimises  sum-of-squares reconstruction + β·KL(q(z|x) || N(0, I));
β > 1 pushes each latent dimension towards one factor of variation. After evaluation
the file's metadata names the factor each dimension follows best (``latent_factors``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from modules.zoo.model_files import save_model_file

KIND = "beta_vae"


@dataclass(frozen=True)
class BetaVAEConfig:
    latent_dim: int = 10
    channels: tuple = (32, 64, 128)  # one stride-2 conv per entry: 32 -> 16 -> 8 -> 4
    image_size: int = 32
    beta: float = 4.0

    def __post_init__(self):
        if self.latent_dim < 1 or not self.channels or any(int(c) < 1 for c in self.channels):
            raise ValueError("latent_dim and channels must be positive")
        if self.image_size % 2 ** len(self.channels):
            raise ValueError("image_size must be divisible by 2**len(channels)")


class BetaVAE(nn.Module):
    def __init__(self, config: BetaVAEConfig):
        super().__init__()
        self.config = config
        self.latent_factors: list[str] = [""] * config.latent_dim
        c = list(config.channels)
        layers, prev = [], 3
        for ch in c:
            layers += [nn.Conv2d(prev, ch, 4, 2, 1), nn.SiLU()]
            prev = ch
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        self.bottom = config.image_size // 2 ** len(c)
        flat = c[-1] * self.bottom ** 2
        self.to_latent = nn.Linear(flat, 2 * config.latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(config.latent_dim, flat), nn.SiLU())
        layers = []
        for ch_in, ch_out in zip(c[::-1], c[::-1][1:] + [c[0]]):
            layers += [nn.ConvTranspose2d(ch_in, ch_out, 4, 2, 1), nn.SiLU()]
        self.decoder = nn.Sequential(*layers, nn.Conv2d(c[0], 3, 3, 1, 1))

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_latent(self.encoder(images)).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(z).view(len(z), self.config.channels[-1], self.bottom, self.bottom)
        return torch.tanh(self.decoder(h))

    def forward(self, images: torch.Tensor):
        mu, logvar = self.encode(images)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decode(z), mu, logvar


def loss_terms(model: BetaVAE, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image sum-of-squares reconstruction and KL, each averaged over the batch."""
    recon, mu, logvar = model(images)
    reconstruction = (recon - images).pow(2).flatten(1).sum(1).mean()
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
    return reconstruction, kl


def save_latent_model(path: str | Path, model: BetaVAE, info: dict | None = None) -> None:
    save_model_file(path, model, KIND, model.config, info)
