"""Live previews of latents during sampling, and the final latent→image decode."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from modules.models import families
from modules.models.families import Family

# Latents up to this many positions are decoded with the real VAE for the preview, where no colour map exists.
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
def preview_image(vae, latents: torch.Tensor, family: Family) -> Image.Image | None:
    """A quick look at the first image of the batch: through the family's fixed latent → RGB map (A1111's
    "Approx cheap"), enlarged to the picture's size; decoded with the VAE only where the family has no map
    and the latent is small. A full decode costs about as much as a sampling step at small sizes (measured by
    bench/txt2img.py: three previews made 20-step zoo-shapes images 8 % slower), the map nothing."""
    first = latents[:1]
    rgb_rows = family.latent.preview_rgb
    if not rgb_rows or first.shape[1] != len(rgb_rows):
        if first.shape[-1] * first.shape[-2] <= FULL_DECODE_LIMIT and hasattr(vae, "decode"):
            return to_pil(decode_latents(vae, first))[0]
        return None
    coefs = torch.tensor(rgb_rows, device=first.device, dtype=torch.float32)
    rgb = torch.einsum("nlhw,lr->nrhw", first.float(), coefs)
    image = to_pil(rgb)[0]
    scale = 2 ** (len(getattr(getattr(vae, "config", None), "block_out_channels", (0,))) - 1)
    return image.resize((image.width * scale, image.height * scale), Image.BILINEAR) if scale > 1 else image
