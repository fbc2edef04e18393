"""Latent Explorer for small VAEs: decode, encode, interpolate, traverse, map. Pure functions of a
validated request and a loaded model (``LatentModel``); the manager loads the weights.

Latent values are in σ units of the prior N(0, I): for a β-VAE a slider's value is z itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modules.capabilities.latent import media
from modules.capabilities.latent.request import (
    LatentDecodeRequest, LatentEncodeRequest, LatentInterpolateRequest, LatentMapRequest, LatentTraverseRequest,
    RandomLatentRequest, to_rgb_square)
from modules.capabilities.latent.state import LatentState, from_png, with_metadata

DECODE_CHUNK = 256
OUTPUT_MODE = "latent"   # outputs/latent-images/YYYY-MM-DD/


@dataclass
class LatentModel:
    """A loaded β-VAE and what the explorer shows about it."""
    name: str                # file name without extension
    title: str               # "name.safetensors [shorthash]"
    sha256: str
    vae: torch.nn.Module     # encode(images) -> (mu, logvar); decode(z) -> images in [-1, 1]
    factors: list[str] = field(default_factory=list)   # factor each dim follows best ("" unknown)

    @property
    def latent_dim(self) -> int:
        return int(self.vae.latent_dim)

    @property
    def image_size(self) -> int:
        return int(self.vae.config.image_size)

    def dim_label(self, d: int) -> str:
        factor = self.factors[d] if d < len(self.factors) else ""
        return f"z{d} · {factor}" if factor else f"z{d}"

    def dims_of(self, factor: str) -> list[int]:
        return [d for d, f in enumerate(self.factors) if f == factor]

    def state(self, latent: np.ndarray) -> LatentState:
        return LatentState(np.asarray(latent, np.float32), self.name, self.sha256 or "", "beta_vae")


def latent_model(info, vae) -> LatentModel:
    """From a ZooModelInfo and the module the manager loaded for it."""
    factors = list(getattr(vae, "latent_factors", []) or [])
    return LatentModel(info.model_name, info.title, info.sha256 or "", vae, factors)


# ---------------------------------------------------------------- the network, batched

@torch.inference_mode()
def decode_latents(model: LatentModel, latents: np.ndarray) -> np.ndarray:
    """uint8 [N, S, S, 3] from float32 [N, latent_dim]."""
    parameter = next(model.vae.parameters())
    out = []
    for start in range(0, len(latents), DECODE_CHUNK):
        z = torch.from_numpy(np.ascontiguousarray(latents[start:start + DECODE_CHUNK], np.float32))
        images = model.vae.decode(z.to(parameter.device, parameter.dtype)).float()
        out.append(((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.image_size, model.image_size, 3), np.uint8)


@torch.inference_mode()
def encode_images(model: LatentModel, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(μ, σ) float32 [N, latent_dim] of the posterior q(z|x), from uint8 [N, S, S, 3]."""
    parameter = next(model.vae.parameters())
    mus, sigmas = [], []
    for start in range(0, len(images), DECODE_CHUNK):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + DECODE_CHUNK])).permute(0, 3, 1, 2)
        x = x.to(parameter.device, parameter.dtype) / 127.5 - 1.0
        mu, logvar = model.vae.encode(x)
        mus.append(mu.float().cpu().numpy())
        sigmas.append((0.5 * logvar.float()).exp().cpu().numpy())
    return np.concatenate(mus), np.concatenate(sigmas)


# ---------------------------------------------------------------- jobs

@dataclass
class DecodeResult:
    image: Image.Image     # native size; carries the latent state in its PNG text
    state: LatentState


def decode(request: LatentDecodeRequest, model: LatentModel) -> DecodeResult:
    """``request`` must be validated against ``model.latent_dim``."""
    latent = np.asarray(request.latent, np.float32)
    image = Image.fromarray(decode_latents(model, latent[None])[0])
    state = model.state(latent)
    return DecodeResult(with_metadata(image, state), state)


@dataclass
class EncodeResult:
    mu: np.ndarray             # [latent_dim]
    sigma: np.ndarray          # [latent_dim]; zeros when restored from metadata
    input_image: Image.Image   # what the encoder saw (converted, resized)
    reconstruction: Image.Image
    restored: LatentState | None = None   # set when the image carried a latent (a PNG saved here)


def encode(request: LatentEncodeRequest, model: LatentModel) -> EncodeResult:
    """μ and σ per dimension of an image. A PNG saved by the explorer gives back its stored latent
    exactly, instead of an encoding of its pixels."""
    image = request.image
    stored = from_png(image, "image")
    if stored is not None and len(stored.latent) == model.latent_dim:
        recon = decode_latents(model, stored.latent[None])[0]
        return EncodeResult(stored.latent, np.zeros_like(stored.latent), Image.fromarray(recon),
                            Image.fromarray(recon), stored)
    pixels = to_rgb_square(image, model.image_size)
    mu, sigma = encode_images(model, pixels[None])
    recon = decode_latents(model, mu)[0]
    return EncodeResult(mu[0], sigma[0], Image.fromarray(pixels), Image.fromarray(recon))


def random_latent(request: RandomLatentRequest, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """A draw, with the request's (validated) seed, from the aggregate posterior of an encoded data set
    (``mu``, ``sigma`` [N, latent_dim]): one of its images' posteriors N(μₙ, (scale·σₙ)²), picked at random.
    The prior N(0, I) is where the KL term pulls, not where the pictures are: a prior draw mixes the
    codes of several pictures and decodes to a murky blob, a draw near one encoding to a clear picture."""
    rng = np.random.default_rng(request.seed)
    n = int(rng.integers(len(mu)))
    noise = rng.standard_normal(mu.shape[1])
    return (mu[n] + request.scale * sigma[n] * noise).astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (1 - t)[:, None] * a[None] + t[:, None] * b[None]


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation along the great circle (norms interpolated linearly), which keeps
    intermediate latents at a typical distance from the origin; falls back to lerp for (anti)parallel
    or zero vectors."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na < 1e-8 or nb < 1e-8:
        return lerp(a, b, t)
    cos = float(np.clip(np.dot(a64 / na, b64 / nb), -1.0, 1.0))
    omega = np.arccos(cos)
    if np.sin(omega) < 1e-6:
        return lerp(a, b, t)
    s = np.sin(omega)
    ua, ub = a64 / na, b64 / nb
    direction = (np.sin((1 - t) * omega) / s)[:, None] * ua + (np.sin(t * omega) / s)[:, None] * ub
    norms = (1 - t) * na + t * nb
    return (direction * norms[:, None]).astype(np.float32)


def interpolation_latents(start: np.ndarray, end: np.ndarray, frames: int, method: str) -> np.ndarray:
    t = np.linspace(0.0, 1.0, frames)
    latents = (slerp if method == "slerp" else lerp)(start, end, t).astype(np.float32)
    latents[0], latents[-1] = start, end  # exact endpoints, whatever the rounding
    return latents


@dataclass
class InterpolateResult:
    latents: np.ndarray        # [frames, latent_dim]
    frames: np.ndarray         # uint8 [frames, S, S, 3]
    strip: Image.Image
    gif: Path | None = None
    mp4: Path | None = None


def interpolate(request: LatentInterpolateRequest, model: LatentModel, outdir: Path | None = None) -> InterpolateResult:
    """Frames from start to end; with ``outdir`` also a GIF (and an MP4 where ffmpeg is available)."""
    latents = interpolation_latents(request.start, request.end, request.frames, request.method)
    frames = decode_latents(model, latents)
    columns = min(len(frames), 8)
    strip = media.grid(np.stack([media.upscale(f, media.display_scale(model.image_size, 64)) for f in frames]), columns)
    result = InterpolateResult(latents, frames, strip)
    if outdir is not None:
        folder = output_folder(outdir)
        big = media.even_upscale(frames)
        stem = f"{model.name.replace('/', '_')}-{request.method}"
        result.gif = media.write_atomic(folder, stem, ".gif", lambda p: media.write_gif(big, p, request.fps))
        if media.mp4_available():
            result.mp4 = media.write_atomic(folder, stem, ".mp4", lambda p: media.write_mp4(big, p, request.fps))
    return result


def traverse_values(k: float, steps: int) -> np.ndarray:
    return np.linspace(-k, k, steps).astype(np.float32)


def traverse(request: LatentTraverseRequest, model: LatentModel) -> Image.Image:
    """Rows: the chosen dimensions; columns: that dimension set to each value in [-kσ, kσ]."""
    values = traverse_values(request.k, request.steps)
    latents = np.repeat(np.asarray(request.latent, np.float32)[None], len(request.dims) * len(values), axis=0)
    for row, d in enumerate(request.dims):
        latents[row * len(values):(row + 1) * len(values), d] = values
    images = decode_latents(model, latents)
    scale = media.display_scale(model.image_size, 64)
    return media.grid(np.stack([media.upscale(im, scale) for im in images]), columns=len(values),
                      row_labels=[model.dim_label(d) for d in request.dims],
                      column_labels=[f"{v:+.1f}σ" for v in values],
                      title="each row moves one dimension; the others stay at the current latent")


def manifold_latents(request: LatentMapRequest) -> np.ndarray:
    """steps × steps latents, row-major, x to the right and y upwards (top row is +kσ)."""
    values = traverse_values(request.k, request.steps)
    latents = np.repeat(np.asarray(request.latent, np.float32)[None], request.steps ** 2, axis=0)
    for row, y in enumerate(values[::-1]):
        for column, x in enumerate(values):
            latents[row * request.steps + column, [request.dim_x, request.dim_y]] = x, y
    return latents


def manifold(request: LatentMapRequest, model: LatentModel) -> Image.Image:
    images = decode_latents(model, manifold_latents(request))
    values = traverse_values(request.k, request.steps)
    scale = media.display_scale(model.image_size, 64)
    return media.grid(np.stack([media.upscale(im, scale) for im in images]), columns=request.steps, gap=1,
                      row_labels=[f"{v:+.1f}σ" for v in values[::-1]], column_labels=[f"{v:+.1f}σ" for v in values],
                      title=f"→ {model.dim_label(request.dim_x)}    ↑ {model.dim_label(request.dim_y)}")


def output_folder(outdir: Path) -> Path:
    return Path(outdir) / f"{OUTPUT_MODE}-images" / date.today().isoformat()


def save_png(image: Image.Image, state: LatentState, outdir: Path) -> Path:
    """The decoded image as outputs/latent-images/<date>/NNNNN-<model>.png, carrying its latent, model
    and hash in PNG text chunks; atomic and numbered like every saved image."""
    from modules.capabilities.latent.state import png_text
    from modules.images import png_info

    text = png_text(state)
    info = png_info(text.pop("parameters"), text)
    stem = (state.model or "latent").replace("/", "_")
    return media.write_atomic(output_folder(outdir), stem, ".png", lambda p: image.save(p, format="PNG", pnginfo=info))
