"""Class-conditional GAN for 32x32 Shapes images: a StyleGAN-like mapping network on a DCGAN body.

    mapping(z [N,z_dim], class_idx [N])  -> w [N,w_dim]     an MLP on (normalised z, class embedding)
    synthesis(w [N,w_dim])               -> images [N,3,32,32] in [-1,1]
                                            linear to 4x4, then per resolution (8, 16, 32):
                                            upsample, 3x3 conv, leaky ReLU, pixel norm; tanh at the end
    w_avg [num_classes, w_dim]           running mean of w per class, tracked in training
    sample(z, class_idx, truncation_psi) -> images, with w pulled towards w_avg[class]:
                                            w' = w_avg + ψ (w - w_avg); ψ=1 plain, ψ=0 the class's average image

The condition (``class_names``) is the shape kind, or colour and kind ("red circle": the
built-in model); the rest (size, position, background) comes from z. The discriminator
(training only) is a DCGAN conv net with a projection head for the class, a class-prediction
head (AC-GAN) and a minibatch-std feature. (StyleGAN's modulated convolutions from a constant
input did not get past grey blobs in a few CPU minutes; the DCGAN body does.)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from modules.zoo.model_files import save_model_file
from modules.zoo.shapes import COLOUR_NAMES, SHAPES, ShapesData

KIND = "gan"
# What a class can stand for: the shape kind alone, or colour and kind ("red circle").
CONDITIONS = {"kind": SHAPES, "colour-kind": tuple(f"{c} {k}" for k in SHAPES for c in COLOUR_NAMES)}


def class_factors(name: str) -> dict[str, str]:
    """The Shapes factors a class name fixes: {"kind": ...} and, for "red circle", "colour" too."""
    *colour, kind = name.split(" ")
    return {"kind": kind, **({"colour": colour[0]} if colour else {})}


def class_labels(data: ShapesData, class_names: tuple) -> "np.ndarray":
    """Class index of each image's first shape under ``class_names``."""
    import numpy as np
    index = {name: i for i, name in enumerate(class_names)}
    colour_too = " " in class_names[0]
    return np.array([index[f"{s.shapes[0].colour} {s.shapes[0].kind}" if colour_too else s.shapes[0].kind]
                     for s in data.scenes], dtype=np.int64)


@dataclass(frozen=True)
class GANConfig:
    z_dim: int = 64
    w_dim: int = 128
    mapping_layers: int = 3
    channels: tuple = (128, 64, 32)  # synthesis channels at 8, 16, 32 px (4x4 start has twice the first)
    image_size: int = 32
    class_names: tuple = SHAPES

    def __post_init__(self):
        if min(self.z_dim, self.w_dim, self.mapping_layers) < 1 or any(int(c) < 1 for c in self.channels):
            raise ValueError("sizes must be positive")
        if self.image_size != 4 * 2 ** len(self.channels):
            raise ValueError("image_size must be 4 * 2**len(channels)")
        if len(self.class_names) < 1 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError("class_names must be distinct and not empty")


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


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
        # DCGAN-style synthesis, with ProGAN's pixel norm instead of batch norm so that a
        # sample never depends on the rest of its batch (and EMA weights sample correctly).
        self.input = nn.Sequential(nn.Linear(config.w_dim, 2 * c[0] * 16), nn.Unflatten(1, (2 * c[0], 4, 4)),
                                   nn.LeakyReLU(0.2), PixelNorm())
        blocks, prev = [], 2 * c[0]
        for ch in c:
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(prev, ch, 3, 1, 1),
                       nn.LeakyReLU(0.2), PixelNorm()]
            prev = ch
        self.blocks = nn.Sequential(*blocks)
        # He init with zero biases: with PyTorch's default init the biases swamp z and
        # every z starts out as the same image (a collapse the slow mapping never undoes).
        for layer in list(self.mapping_net) + [self.input[0]]:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, a=0.2)
                nn.init.zeros_(layer.bias)
        self.to_rgb = nn.Conv2d(prev, 3, 3, 1, 1)

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
        return torch.tanh(self.to_rgb(self.blocks(self.input(w))))

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
    def __init__(self, config: GANConfig, channels: tuple = (32, 64, 128)):
        super().__init__()
        layers, prev = [], 3
        for i, ch in enumerate(channels):  # 32 -> 16 -> 8 -> 4
            layers += [nn.Conv2d(prev, ch, 4, 2, 1)] + ([nn.BatchNorm2d(ch)] if i else []) + [nn.LeakyReLU(0.2)]
            prev = ch
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.out = nn.Linear(prev * 16 + 1, 1)
        self.embed = nn.Embedding(len(config.class_names), prev * 16 + 1)
        self.classify = nn.Linear(prev * 16 + 1, len(config.class_names))  # AC-GAN head (training only)
        self.last_class_logits = None

    def forward(self, images: torch.Tensor, class_idx: torch.Tensor) -> torch.Tensor:
        h = self.features(images)
        # Minibatch standard deviation (ProGAN): a batch of look-alikes is easy to call fake.
        h = torch.cat([h, h.std(dim=0).mean().expand(len(h), 1)], dim=1)
        self.last_class_logits = self.classify(h)
        return self.out(h).squeeze(1) + (self.embed(class_idx) * h).sum(1) / h.shape[1] ** 0.5  # projection


def save_gan(path: str | Path, generator: Generator, info: dict | None = None) -> None:
    save_model_file(path, generator, KIND, generator.config, info)
