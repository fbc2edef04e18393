"""Live previews of latents during sampling, and the final latent→image decode."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from modules.models import families
from modules.models.families import Family

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
def preview_image(vae, latents: torch.Tensor, family: Family) -> Image.Image | None:
    """A quick look at the first image of the batch: small latents decoded, larger ones through the
    family's fixed latent → RGB map (A1111's "Approx cheap")."""
    first = latents[:1]
    if first.shape[-1] * first.shape[-2] <= FULL_DECODE_LIMIT:
        return to_pil(decode_latents(vae, first))[0]
    rgb_rows = family.latent.preview_rgb
    if not rgb_rows or first.shape[1] != len(rgb_rows):
        return None
    coefs = torch.tensor(rgb_rows, device=first.device, dtype=torch.float32)
    bias = torch.tensor(family.latent.preview_bias, device=first.device, dtype=torch.float32)
    rgb = torch.einsum("nlhw,lr->nrhw", first.float(), coefs) + bias.view(1, 3, 1, 1)
    return to_pil(rgb)[0]
