"""Latent Explorer for Stable Diffusion VAEs, whose latent is C×h×w (4×64×64 for a 512 px image):
too many numbers for a slider each, so the edits act on whole channels and on a few principal
directions instead. Pure functions of a validated request and a loaded diffusers AutoencoderKL.

Latents here are *scaled* as the diffusion model sees them, ``(mean − shift) · scaling_factor``,
so each channel has σ ≈ 1 over natural images. An edit is

    z'[c] = mean[c] + scale[c] · (z[c] − mean[c]) + offset[c] · σ[c]  +  Σₖ aₖ · sₖ · vₖ

with mean/σ of channel c in this image, vₖ the k-th principal direction of the encoded direction
images (unit vectors over all C·h·w numbers) and sₖ its standard deviation across them (GANSpace's
recipe applied to a VAE latent).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from modules.capabilities.latent import media
from modules.capabilities.latent.request import to_rgb_square
from modules.capabilities.latent.sd_request import SdVaeDirectionsRequest, SdVaeEdit, SdVaeEncodeRequest

MAX_CHANNELS = 16   # SD 1.x/2.x/SDXL: 4; SD3/Flux: 16
MAX_DIRECTIONS = 8


@dataclass(frozen=True)
class VaeGeometry:
    channels: int
    downscale: int        # pixels per latent cell along a side
    scaling_factor: float
    shift_factor: float


def geometry(vae) -> VaeGeometry:
    config = vae.config
    return VaeGeometry(int(config.latent_channels), 2 ** (len(config.block_out_channels) - 1),
                       float(getattr(config, "scaling_factor", None) or 1.0),
                       float(getattr(config, "shift_factor", None) or 0.0))


@dataclass
class SdVaeLatent:
    latent: np.ndarray       # float32 [C, h, w], scaled
    vae: str                 # the VAE source it came from
    input_image: Image.Image # what the encoder saw

    @property
    def channel_mean(self) -> np.ndarray:
        return self.latent.reshape(len(self.latent), -1).mean(1)

    @property
    def channel_std(self) -> np.ndarray:
        return self.latent.reshape(len(self.latent), -1).std(1) + 1e-6


@dataclass
class Directions:
    components: np.ndarray   # [K, C*h*w], unit length
    stds: np.ndarray         # [K], σ of the encoded images along each
    shape: tuple[int, int, int]
    images: int
    explained: np.ndarray    # [K], fraction of the variance each explains


def _device_dtype(vae) -> tuple[torch.device, torch.dtype]:
    return vae.device, vae.dtype


@torch.inference_mode()
def encode_pixels(vae, pixels: np.ndarray) -> np.ndarray:
    """Scaled posterior means, float32 [N, C, h, w], of uint8 [N, H, W, 3] images."""
    g = geometry(vae)
    device, dtype = _device_dtype(vae)
    out = []
    for start in range(0, len(pixels), 8):
        x = torch.from_numpy(np.ascontiguousarray(pixels[start:start + 8])).permute(0, 3, 1, 2)
        x = x.to(device, dtype) / 127.5 - 1.0
        mean = vae.encode(x).latent_dist.mean.float()
        out.append(((mean - g.shift_factor) * g.scaling_factor).cpu().numpy())
    return np.concatenate(out)


@torch.inference_mode()
def decode_latents(vae, latents: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] from scaled latents float32 [N, C, h, w]."""
    g = geometry(vae)
    device, dtype = _device_dtype(vae)
    z = torch.from_numpy(np.ascontiguousarray(latents, np.float32)) / g.scaling_factor + g.shift_factor
    images = vae.decode(z.to(device, dtype)).sample.float()
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def encode(request: SdVaeEncodeRequest, vae) -> SdVaeLatent:
    g = geometry(vae)
    side = max(g.downscale, request.size // g.downscale * g.downscale)
    pixels = to_rgb_square(request.image, side)
    return SdVaeLatent(encode_pixels(vae, pixels[None])[0], request.vae, Image.fromarray(pixels))


def apply_edit(current: SdVaeLatent, edit: SdVaeEdit, directions: Directions | None = None) -> np.ndarray:
    """The edited latent; ``edit`` must be validated for this latent's channels and directions."""
    z = current.latent.astype(np.float32)
    mean, std = current.channel_mean[:, None, None], current.channel_std[:, None, None]
    scales = np.asarray(edit.scales, np.float32)[:, None, None]
    offsets = np.asarray(edit.offsets, np.float32)[:, None, None]
    edited = z + (scales - 1) * (z - mean) + offsets * std  # exactly z when nothing is moved
    if directions is not None and tuple(directions.shape) == z.shape:
        amounts = np.asarray(edit.directions[:len(directions.stds)], np.float32) * directions.stds
        edited = edited + (amounts @ directions.components).reshape(z.shape)
    return edited.astype(np.float32)


def decode(current: SdVaeLatent, edit: SdVaeEdit, vae, directions: Directions | None = None) -> Image.Image:
    return Image.fromarray(decode_latents(vae, apply_edit(current, edit, directions)[None])[0])


def principal_directions(request: SdVaeDirectionsRequest, vae, side: int) -> Directions:
    """Top principal directions of the latents of the request's images (else Shapes images), all
    encoded at ``side`` px so the directions fit the current latent."""
    if request.images:
        pixels = np.stack([to_rgb_square(image, side, f"images[{i}]") for i, image in enumerate(request.images)])
    else:
        from modules.zoo import shapes

        pixels = shapes.make_dataset(request.count, seed=31, size=side).images
    latents = encode_pixels(vae, pixels)
    flat = latents.reshape(len(latents), -1).astype(np.float64)
    centred = flat - flat.mean(0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(request.directions, len(singular))
    variance = singular ** 2 / max(1, len(flat) - 1)
    total = variance.sum() or 1.0
    return Directions(vt[:k].astype(np.float32), np.sqrt(variance[:k]).astype(np.float32), latents.shape[1:],
                      len(latents), (variance[:k] / total).astype(np.float32))


def channel_views(latent: np.ndarray, target: int = 128) -> list[tuple[Image.Image, str]]:
    """Each channel as a blue–white–red picture over [−3σ, 3σ] of that channel, with a caption."""
    import matplotlib

    cmap = matplotlib.colormaps["RdBu_r"]
    views = []
    for c, channel in enumerate(latent):
        mean, std = float(channel.mean()), float(channel.std()) + 1e-6
        normalised = np.clip((channel - mean) / (6 * std) + 0.5, 0, 1)
        rgb = (cmap(normalised)[..., :3] * 255).astype(np.uint8)
        views.append((Image.fromarray(media.upscale(rgb, media.display_scale(max(channel.shape), target))),
                      f"channel {c}: mean {mean:+.2f}, σ {std:.2f}"))
    return views
