"""Class-conditional GAN for 32x32 Shapes images, StyleGAN-like in miniature.

    mapping(z [N,z_dim], class_idx [N])  -> w [N,w_dim]     an MLP on (normalised z, class embedding)
    synthesis(w [N,w_dim])               -> images [N,3,32,32] in about [-1,1]
                                            a learned 4x4 constant, then per resolution
                                            (8, 16, 32): upsample, two 3x3 convs whose input
                                            channels are scaled by a style from w (modulation)
                                            and renormalised (demodulation)
    w_avg [num_classes, w_dim]           running mean of w per class, tracked in training
    sample(z, class_idx, truncation_psi) -> images, with w pulled towards w_avg[class]:
                                            w' = w_avg + ψ (w - w_avg); ψ=1 plain, ψ=0 the class's average image

The condition is the shape kind (``class_names``); colour, size, position and
background come from z. The discriminator (training only) is a conv net with a
projection head for the class.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from modules.errors import BadModelFile
from modules.zoo.model_files import load_state, parse_config, read_metadata, save_model_file
from modules.zoo.shapes import SHAPES

KIND = "gan"


@dataclass(frozen=True)
class GANConfig:
    z_dim: int = 64
    w_dim: int = 128
    mapping_layers: int = 3
    channels: tuple = (64, 32, 16)  # synthesis channels at 8, 16, 32 px (the 4x4 constant uses the first)
    image_size: int = 32
    class_names: tuple = SHAPES

    def __post_init__(self):
        if min(self.z_dim, self.w_dim, self.mapping_layers) < 1 or any(int(c) < 1 for c in self.channels):
            raise ValueError("sizes must be positive")
        if self.image_size != 4 * 2 ** len(self.channels):
            raise ValueError("image_size must be 4 * 2**len(channels)")
        if len(self.class_names) < 1 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError("class_names must be distinct and not empty")


class ModulatedConv(nn.Module):
    """3x3 conv whose input channels are scaled per sample by a style, then demodulated (StyleGAN2)."""

    def __init__(self, w_dim: int, c_in: int, c_out: int, kernel: int = 3, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel) / (c_in * kernel * kernel) ** 0.5)
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.style = nn.Linear(w_dim, c_in)
        nn.init.zeros_(self.style.weight)
        nn.init.ones_(self.style.bias)
        self.demodulate = demodulate
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # Scaling the input instead of the weights is the same maths and a plain (fast) conv.
        s = self.style(w)                                                   # [N, c_in]
        out = F.conv2d(x * s[:, :, None, None], self.weight, padding=self.padding)
        if self.demodulate:
            norm = (self.weight.pow(2).sum(dim=(2, 3))[None] * s.pow(2)[:, None, :]).sum(2)  # [N, c_out]
            out = out * torch.rsqrt(norm + 1e-8)[:, :, None, None]
        return out + self.bias.view(1, -1, 1, 1)


class Generator(nn.Module):
    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        n_classes = len(config.class_names)
        self.embed = nn.Embedding(n_classes, config.z_dim)
        layers, dim = [], 2 * config.z_dim
        for _ in range(config.mapping_layers):
            layers += [nn.Linear(dim, config.w_dim), nn.LeakyReLU(0.2)]
            dim = config.w_dim
        self.mapping_net = nn.Sequential(*layers)
        self.register_buffer("w_avg_buffer", torch.zeros(n_classes, config.w_dim))
        c = list(config.channels)
        self.const = nn.Parameter(torch.randn(1, c[0], 4, 4))
        self.convs = nn.ModuleList()
        prev = c[0]
        for ch in c:
            self.convs.append(ModulatedConv(config.w_dim, prev, ch))
            self.convs.append(ModulatedConv(config.w_dim, ch, ch))
            prev = ch
        self.to_rgb = ModulatedConv(config.w_dim, prev, 3, kernel=1, demodulate=False)

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def num_classes(self) -> int:
        return len(self.config.class_names)

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.w_avg_buffer

    def mapping(self, z: torch.Tensor, class_idx: torch.Tensor) -> torch.Tensor:
        normalise = lambda v: v * torch.rsqrt(v.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # noqa: E731
        return self.mapping_net(torch.cat([normalise(z), normalise(self.embed(class_idx))], dim=1))

    def synthesis(self, w: torch.Tensor) -> torch.Tensor:
        x = self.const.expand(len(w), -1, -1, -1)
        for i, conv in enumerate(self.convs):
            if i % 2 == 0:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = F.leaky_relu(conv(x, w), 0.2)
        return self.to_rgb(x, w)

    def forward(self, z: torch.Tensor, class_idx: torch.Tensor) -> torch.Tensor:
        return self.synthesis(self.mapping(z, class_idx))

    @torch.no_grad()
    def track_w_avg(self, w: torch.Tensor, class_idx: torch.Tensor, beta: float = 0.995) -> None:
        for c in class_idx.unique():
            self.w_avg_buffer[c].lerp_(w[class_idx == c].mean(0), 1 - beta)

    def sample(self, z: torch.Tensor, class_idx: torch.Tensor | int, truncation_psi: float = 1.0) -> torch.Tensor:
        """Images [N,3,32,32] clamped to [-1,1]; ``class_idx`` an int or a tensor [N]."""
        if isinstance(class_idx, int):
            class_idx = torch.full((len(z),), class_idx, dtype=torch.long)
        w = self.mapping(z, class_idx)
        w_avg = self.w_avg_buffer[class_idx]
        return self.synthesis(w_avg + truncation_psi * (w - w_avg)).clamp(-1, 1)


class Discriminator(nn.Module):
    def __init__(self, config: GANConfig, channels: tuple = (16, 32, 64)):
        super().__init__()
        layers, prev = [nn.Conv2d(3, channels[0] // 2, 3, 1, 1), nn.LeakyReLU(0.2)], channels[0] // 2
        for ch in channels:
            layers += [nn.Conv2d(prev, ch, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(ch, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
            prev = ch
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Linear(prev * 16, 256), nn.LeakyReLU(0.2))
        self.out = nn.Linear(256, 1)
        self.embed = nn.Embedding(len(config.class_names), 256)

    def forward(self, images: torch.Tensor, class_idx: torch.Tensor) -> torch.Tensor:
        h = self.features(images)
        return self.out(h).squeeze(1) + (self.embed(class_idx) * h).sum(1)  # projection discriminator


def save_gan(path: str | Path, generator: Generator, info: dict | None = None) -> None:
    save_model_file(path, generator, KIND, generator.config, info)


def load_gan(path: str | Path) -> Generator:
    """The generator in ``path`` (eval mode, CPU); BadModelFile if the file does not describe one."""
    metadata = read_metadata(path)
    config = parse_config(path, GANConfig, KIND, metadata)
    generator = Generator(config)
    load_state(path, generator)
    if not torch.isfinite(generator.w_avg).all():
        raise BadModelFile(path, "w_avg is not finite")
    return generator.eval()
