"""Large pictures go through the VAE in tiles: bit-identical below the threshold, close (PSNR) above it, the
shared VAE never left in tiling mode; through real txt2img and img2img jobs too."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modules.generation import vae_tiles
from tests import tiny_models


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return tiny_models._tiny_vae(0.18215).eval()


def smooth_latents(side: int) -> torch.Tensor:
    torch.manual_seed(1)
    coarse = torch.randn(1, 4, 4, 4)
    return torch.nn.functional.interpolate(coarse, (side, side), mode="bicubic", align_corners=False)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


@torch.no_grad()
def test_below_the_threshold_bit_identical_above_it_close(vae, monkeypatch):
    latents = smooth_latents(32)  # 256² for this VAE (8× up), whose tiles are 64²
    plain = vae.decode(latents).sample
    assert torch.equal(vae_tiles.decode(vae, latents), plain)  # 256² is far below 1024²: untouched
    monkeypatch.setattr(vae_tiles, "TILE_ABOVE_PIXELS", 128 * 128)
    assert vae_tiles.tiled(vae, 256, 256) and not vae_tiles.tiled(vae, 64, 128)
    tiled = vae_tiles.decode(vae, latents)
    assert tiled.shape == plain.shape and not torch.equal(tiled, plain)
    # How close depends on the VAE: with random weights each tile's GroupNorm statistics differ much from the
    # whole picture's (tiles of 8 latents here), so closeness is checked on a real job below (PSNR >= 20 dB).
    pixels = plain.clamp(-1, 1)
    encoded = vae_tiles.encode_mean(vae, pixels)
    assert encoded.shape == (1, 4, 32, 32) and torch.isfinite(encoded).all()
    assert not vae.use_tiling and not vae.use_slicing  # the shared VAE is left as it was


def test_a_large_txt2img_and_img2img_decode_in_tiles_through_real_jobs(backend, small_request, monkeypatch):
    from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest

    request = small_request(width=128, height=128, seed=3, save_images=False)
    plain = backend.txt2img(request).images[0]
    decodes = []
    real = vae_tiles.compat.vae_tiled_decode
    monkeypatch.setattr(vae_tiles.compat, "vae_tiled_decode", lambda v, z: decodes.append(z.shape) or real(v, z))
    monkeypatch.setattr(vae_tiles, "TILE_ABOVE_PIXELS", 64 * 64)
    tiled = backend.txt2img(request).images[0]
    assert decodes and tiled.size == plain.size == (128, 128)
    assert psnr(np.asarray(tiled), np.asarray(plain)) >= 20
    encodes = []
    real_encode = vae_tiles.compat.vae_tiled_encode_mean
    monkeypatch.setattr(vae_tiles.compat, "vae_tiled_encode_mean", lambda v, x: encodes.append(x.shape) or real_encode(v, x))
    img2img = Img2ImgRequest(prompt="a red circle", init_images=[Image.new("RGB", (128, 128), "red")], width=128,
                             height=128, steps=3, denoising_strength=0.5, seed=1, checkpoint="tiny-sd15",
                             save_images=False)
    out = backend.runner.run(IMG2IMG, img2img).images[0]
    assert encodes and out.size == (128, 128)
