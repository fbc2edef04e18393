"""VGG16's `features` (torchvision's layer layout) in plain PyTorch, and the LPIPS distance on them.

Used as the perceptual loss of GAN projection (NVIDIA's projector uses an LPIPS VGG16). The weights come only
from a user's file (modules/models/lpips_files.py): nothing is downloaded, and NVIDIA's TorchScript vgg16.pt is
not read (TorchScript runs code). Key names are torchvision's `features.N.weight/bias`; LPIPS's learned linear
layers (`lin0..lin4.model.1.weight`, the lpips package's vgg.pth layout) are used when the file(s) hold them."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# torchvision's vgg16 `features`: channels per conv, "M" a 2x2 max-pool. Indices follow nn.Sequential numbering.
LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
TAPS = (3, 8, 15, 22, 29)   # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3: LPIPS's layers
CHANNELS = (64, 128, 256, 512, 512)
# LPIPS's ScalingLayer: images in [-1, 1] to the ImageNet normalisation VGG was trained with.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
SIDE = 256  # NVIDIA's projector shrinks larger images to 256 before VGG


def feature_shapes() -> dict[str, tuple]:
    """The tensor names and shapes a VGG16 `features` file must hold (up to relu5_3)."""
    shapes, index, channels = {}, 0, 3
    for item in LAYOUT:
        if item == "M":
            index += 1
            continue
        shapes[f"features.{index}.weight"] = (item, channels, 3, 3)
        shapes[f"features.{index}.bias"] = (item,)
        channels, index = item, index + 2  # conv, relu
    return shapes


def lin_shapes() -> dict[str, tuple]:
    return {f"lin{n}.model.1.weight": (1, c, 1, 1) for n, c in enumerate(CHANNELS)}


class VggPerceptual(nn.Module):
    """LPIPS-style distance: VGG16 features at relu1_2..relu5_3, each unit-normalised over channels, squared
    difference, then weighted per channel by LPIPS's lin weights when given, else averaged over channels;
    averaged over positions and summed over the five layers. Images [N, 3, H, W] in [-1, 1]."""

    def __init__(self, state: dict[str, torch.Tensor], use_lin: bool):
        super().__init__()
        layers, index, channels = [], 0, 3
        for item in LAYOUT[:-1]:  # the last pool comes after relu5_3: not needed
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                index += 1
                continue
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU()]
            channels, index = item, index + 2
        self.features = nn.Sequential(*layers)
        self.lins = nn.ParameterList([nn.Parameter(torch.ones(1, c, 1, 1) / c) for c in CHANNELS])
        self.use_lin = use_lin
        own = {k: v for k, v in state.items() if k.startswith("features.")}
        if use_lin:
            own.update({f"lins.{n}": state[f"lin{n}.model.1.weight"] for n in range(len(CHANNELS))})
        else:
            own.update({f"lins.{n}": p.detach() for n, p in enumerate(self.lins)})
        self.load_state_dict(own, strict=True)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.shape[-1] > SIDE or images.shape[-2] > SIDE:
            images = F.interpolate(images, size=(SIDE, SIDE), mode="area")
        x = (images - self.shift) / self.scale
        found = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in TAPS:
                found.append(x / (x.norm(dim=1, keepdim=True) + 1e-10))
                if len(found) == len(TAPS):
                    break
        return found

    def distance(self, images: torch.Tensor, target_taps: list[torch.Tensor]) -> torch.Tensor:
        """[N] distances of images to the target's taps (taps(target), computed once)."""
        total = 0
        for tap, target, lin in zip(self.taps(images), target_taps, self.lins):
            total = total + ((tap - target) ** 2 * lin).sum(1).mean((1, 2))
        return total
