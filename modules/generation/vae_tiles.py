"""Large pictures through the VAE in tiles, chosen per call: above TILE_ABOVE_PIXELS a decode (or an img2img
encode) goes through diffusers' tiled path (overlapping tiles of the VAE's own sample size, 512² for SD 1.x,
blended at the seams), so its memory stays near that of one tile; at or below it the output is bit-identical
to an untiled call. The cached VAE is never switched into tiling mode (other jobs share it): modules/compat.py
calls the tiled functions for this call only. Batches are already decoded one image at a time (slicing)."""
from __future__ import annotations

import torch

from modules import compat

# Above this many pixels (the picture's, width × height) decode and encode go in tiles: 1024² and smaller
# pictures are made exactly as before; 2048² decodes in 512² tiles on SD 1.x (bench/vae_tiling.py).
TILE_ABOVE_PIXELS = 1024 * 1024


def _scale(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def tiled(vae, height: int, width: int) -> bool:
    """Whether a picture of this pixel size goes through `vae` in tiles."""
    tile = compat.vae_tile_latent_size(vae)
    return tile is not None and height * width > TILE_ABOVE_PIXELS and max(height, width) > tile * _scale(vae)


def decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """vae.decode(latents).sample (latents as the VAE takes them: unscaled), in tiles for a large picture."""
    scale = _scale(vae)
    if tiled(vae, latents.shape[-2] * scale, latents.shape[-1] * scale):
        return compat.vae_tiled_decode(vae, latents)
    return vae.decode(latents).sample


def encode_mean(vae, pixels: torch.Tensor) -> torch.Tensor:
    """The mean of vae.encode(pixels)'s latent distribution (unscaled), in tiles for a large picture."""
    if tiled(vae, pixels.shape[-2], pixels.shape[-1]):
        return compat.vae_tiled_encode_mean(vae, pixels)
    return vae.encode(pixels).latent_dist.mode()
