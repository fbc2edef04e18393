"""Decoding without NaN: a half-precision VAE that overflows (a silent black image in other UIs) is
retried in fp32, as A1111's --no-half-vae would have done.

The retry runs on an fp32 copy of the VAE made for that one decode (modules/models/precision_copy.py): the
shared VAE's dtype never changes, so no other user of the cached checkpoint (a preview, the next job, the
Latent Explorer) ever sees it half converted."""
from __future__ import annotations

import torch

from modules.capabilities.base import GenerationFailed
from modules.generation import preview
from modules.models.precision_copy import fp32_copy


def decode_without_nans(vae, latents: torch.Tensor) -> torch.Tensor:
    """Latents → images in [-1, 1]; GenerationFailed when the VAE gives NaN even in fp32."""
    decoded = preview.decode_latents(vae, latents)
    if torch.isfinite(decoded).all():
        return decoded
    if vae.dtype != torch.float32:
        full = fp32_copy(vae)
        decoded = preview.decode_latents(full, latents.to(full.device))
        del full
        if torch.isfinite(decoded).all():
            return decoded
    raise GenerationFailed("the VAE produced NaN values (a black image); try --no-half-vae or --precision fp32")
