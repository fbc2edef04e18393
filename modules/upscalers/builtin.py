"""The upscalers that need no model file, with A1111's names, and its latent upscale modes for hires fix."""
from __future__ import annotations

from PIL import Image

NONE = "None"
LANCZOS = "Lanczos"
NEAREST = "Nearest"
IMAGE_UPSCALERS = {LANCZOS: Image.Resampling.LANCZOS, NEAREST: Image.Resampling.NEAREST}

# name -> (torch.nn.functional.interpolate mode, antialias), as A1111's shared.latent_upscale_modes
LATENT_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}


def resize(image: Image.Image, size: tuple[int, int], name: str) -> Image.Image:
    """`image` at `size` with a built-in resampler (None: Lanczos, as A1111 finishes every upscale)."""
    if image.size == size:
        return image
    return image.resize(size, IMAGE_UPSCALERS.get(name, Image.Resampling.LANCZOS))
