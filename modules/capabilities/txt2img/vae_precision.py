"""Decoding without NaN: a half-precision VAE that overflows (a silent black image in other UIs) is
retried in fp32, as A1111's --no-half-vae would have done.

The retry runs on an fp32 copy of the VAE made for that one decode: the shared VAE's dtype never
changes, so no other user of the cached checkpoint (a preview, the next job, the Latent Explorer) ever
sees it half converted. The copy is built on the meta device and takes the weights converted to fp32
where they are, so it costs one VAE's weights in fp32 for the length of the decode, and nothing is moved
between devices by hand."""
from __future__ import annotations

import torch

from modules.capabilities.base import GenerationFailed
from modules.generation import preview


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


def fp32_copy(vae):
    """A new VAE of the same class and config with `vae`'s weights in fp32 (hooks and shared state left behind)."""
    with torch.device("meta"):
        copy = type(vae).from_config(vae.config)
    copy.load_state_dict({name: tensor.float() for name, tensor in vae.state_dict().items()}, assign=True)
    return copy.eval()
