"""Approx NN and TAESD preview decoders for tests, fitted in seconds to a checkpoint's own VAE on rendered
shapes (so their previews have the right colours), or left random (for loading and sizes only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from modules.models.preview_decoders import ApproxNN
from modules.zoo import shapes

SMALL_TAESD = dict(encoder_block_out_channels=(8, 8, 8), decoder_block_out_channels=(16, 16, 16),
                   num_encoder_blocks=(1, 1, 1), num_decoder_blocks=(1, 1, 1))


def _pictures_and_latents(vae, count: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    pictures = np.stack([shapes.render(shapes.sample_scene(rng)) for _ in range(count)])
    images = torch.from_numpy(pictures).float().permute(0, 3, 1, 2) / 127.5 - 1
    with torch.no_grad():
        latents = vae.encode(images).latent_dist.mean * vae.config.scaling_factor
    return images, latents


def _fit(model: torch.nn.Module, forward, images: torch.Tensor, latents: torch.Tensor, steps: int,
         lr: float) -> None:
    torch.manual_seed(0)
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        out = forward(latents)
        target = torch.nn.functional.interpolate(images, out.shape[-2:], mode="area")
        loss = torch.nn.functional.mse_loss(out, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def fitted(vae, folder: Path, steps: int = 600) -> None:
    """models/VAE-approx/model.pt (Approx NN) and taesd/ (a small diffusers AutoencoderTiny) fitted to `vae`."""
    from diffusers import AutoencoderTiny

    folder.mkdir(parents=True, exist_ok=True)
    images, latents = _pictures_and_latents(vae)
    torch.manual_seed(0)
    approx = ApproxNN(latents.shape[1])
    _fit(approx, approx, images, latents, steps, lr=3e-3)
    torch.save(approx.state_dict(), folder / "model.pt")
    torch.manual_seed(0)
    tiny = AutoencoderTiny(latent_channels=latents.shape[1], **SMALL_TAESD)
    tiny.encoder.requires_grad_(False)
    _fit(tiny, lambda x: tiny.decode(x).sample, images, latents, steps, lr=5e-3)
    tiny.save_pretrained(folder / "taesd")


def random_taesd_decoder_file(path: Path) -> Path:
    """A decoder-only TAESD file in TAESD's own key layout (`1.weight` ...), random weights."""
    from diffusers import AutoencoderTiny
    from safetensors.torch import save_file

    torch.manual_seed(0)
    decoder = AutoencoderTiny().decoder
    state = {}
    for key, tensor in decoder.state_dict().items():
        _, index, rest = key.split(".", 2)  # layers.N.rest -> N+1.rest: the clamp is TAESD's layer 0
        state[f"{int(index) + 1}.{rest}"] = tensor.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path
