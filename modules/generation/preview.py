"""Live previews of latents during sampling (A1111's methods: Full, Approx NN, Approx cheap, TAESD; the
`show_progress_type` and `show_progress_every_n_steps` settings), and the final latent→image decode."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from modules.generation import vae_tiles
from modules.models import families
from modules.models.families import Family
from modules.settings import PREVIEW_METHODS

log = logging.getLogger(__name__)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """[-1, 1] NCHW → PIL images."""
    array = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = array.permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in array]


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """SD latents → images in [-1, 1], in the VAE's own dtype, then float; a large picture in tiles."""
    scaled = latents / vae.config.scaling_factor
    shift = getattr(vae.config, "shift_factor", None)
    if shift:
        scaled = scaled + shift
    return vae_tiles.decode(vae, scaled.to(vae.dtype)).float()


METHODS = PREVIEW_METHODS  # A1111's show_progress_type choices: saving another name is refused
FULL, APPROX_NN, APPROX_CHEAP, TAESD = METHODS
METHOD_SETTING, EVERY_SETTING = "show_progress_type", "show_progress_every_n_steps"  # modules/settings.py


def cheap_rgb(latents: torch.Tensor, family: Family) -> torch.Tensor | None:
    """A1111's "Approx cheap": the family's fixed latent → RGB map, at the latent's size; None without one."""
    rgb_rows = family.latent.preview_rgb
    if not rgb_rows or latents.shape[1] != len(rgb_rows):
        return None
    coefs = torch.tensor(rgb_rows, device=latents.device, dtype=torch.float32)
    bias = torch.tensor(family.latent.preview_bias, device=latents.device, dtype=torch.float32)
    return torch.einsum("nlhw,lr->nrhw", latents.float(), coefs) + bias.view(1, 3, 1, 1)


@dataclass
class Previewer:
    """One job's live previews: the method, how often (in sampling steps; 0 or less: none while sampling),
    and the Approx NN or TAESD decoder when that method's file was found (else Approx cheap)."""

    method: str = APPROX_CHEAP
    every: int = 5
    decoder: torch.nn.Module | None = None

    def due(self, calls_done: int, calls: int) -> bool:
        """After this many model calls of `calls`: the last step shows the final image instead."""
        return self.every > 0 and calls_done % self.every == 0 and calls_done < calls

    @torch.no_grad()
    def image(self, vae, latents: torch.Tensor, family: Family, size: tuple[int, int]) -> Image.Image | None:
        """The first image of the batch, `size` (the final picture's width, height)."""
        first = latents[:1]
        if self.method == FULL:
            rgb = decode_latents(vae, first)
        elif self.decoder is not None and self.method == APPROX_NN:
            rgb = self.decoder(first.to(_dtype(self.decoder))).float()
        elif self.decoder is not None and self.method == TAESD:
            rgb = self.decoder.decode(first.to(_dtype(self.decoder))).sample.float()
        else:
            rgb = cheap_rgb(first, family)
        if rgb is None:
            return None
        image = to_pil(rgb)[0]
        return image if image.size == size else image.resize(size, Image.Resampling.BILINEAR)


def _dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


@contextlib.contextmanager
def previewing(backend, family: Family) -> Iterator[Previewer]:
    """The job's Previewer from the settings (a method name no save allows, from a hand-edited config.json:
    Approx cheap), its decoder held in the model cache for the length of the job. `backend` None (a bare
    call): Approx cheap every 5 steps."""
    if backend is None:
        yield Previewer()
        return
    method = backend.settings.get(METHOD_SETTING)
    every = backend.settings.get(EVERY_SETTING)
    every = every if isinstance(every, int) else 5
    if method not in METHODS:
        log.warning("show_progress_type %r is none of %s; showing Approx cheap previews", method, ", ".join(METHODS))
        method = APPROX_CHEAP
    if method not in (APPROX_NN, TAESD) or every <= 0:
        yield Previewer(method, every)
        return
    with backend.manager.preview_decoder(method, family.latent) as decoder:
        yield Previewer(method if decoder is not None else APPROX_CHEAP, every, decoder)
