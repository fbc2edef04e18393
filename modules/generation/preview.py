"""Live previews of latents during sampling, and the final latent→image decode."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# A1111's "Approx cheap": a fixed linear map from SD's 4 latent channels to RGB.
_CHEAP_RGB = {
    "sd": torch.tensor([[0.298, 0.207, 0.208], [0.187, 0.286, 0.173],
                        [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]),
    "sdxl": torch.tensor([[0.3448, 0.4168, 0.4395], [-0.1953, -0.0290, 0.0250],
                          [0.1074, 0.0886, -0.0163], [-0.3730, -0.2499, -0.2088]]),
}
# Latents up to this many positions are decoded with the real VAE for the preview: cheap when small.
FULL_DECODE_LIMIT = 32 * 32


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """[-1, 1] NCHW → PIL images."""
    array = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = array.permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in array]


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """SD latents → images in [-1, 1], in the VAE's own dtype, then float."""
    scaled = latents / vae.config.scaling_factor
    shift = getattr(vae.config, "shift_factor", None)
    if shift:
        scaled = scaled + shift
    return vae.decode(scaled.to(vae.dtype)).sample.float()


@torch.no_grad()
def preview_image(vae, latents: torch.Tensor, is_sdxl: bool) -> Image.Image | None:
    """A quick look at the first image of the batch."""
    first = latents[:1]
    if first.shape[-1] * first.shape[-2] <= FULL_DECODE_LIMIT:
        return to_pil(decode_latents(vae, first))[0]
    if first.shape[1] != 4:
        return None
    coefs = _CHEAP_RGB["sdxl" if is_sdxl else "sd"].to(first.device, torch.float32)
    rgb = torch.einsum("nlhw,lr->nrhw", first.float(), coefs)
    return to_pil(rgb)[0]
