"""Live previews of latents during sampling (A1111's methods: Full, Approx NN, Approx cheap, TAESD; the
`show_progress_type` and `show_progress_every_n_steps` settings), and the final latent→image decode."""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

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
BUDGET_SETTING = "live_preview_time_budget"  # ours: the % of sampling time previews may take (0: no limit)
DEFAULT_BUDGET = 5
# The last measured seconds of one preview, by method, latent shape and dtype: a job knows what a preview will
# cost before its first one (only the very first preview of a kind is taken unmeasured).
_costs: dict[tuple, float] = {}


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
    the Approx NN or TAESD decoder when that method's file was found (else Approx cheap), and the share of
    the sampling time previews may take (`budget`, in %; 0: every `every` steps whatever they cost).

    With a budget, a due preview is taken only when the previews so far plus this one (its cost as last
    measured) stay within that share of the time since sampling began: a slow method on a fast step shows
    fewer previews instead of slowing the job."""

    method: str = APPROX_CHEAP
    every: int = 5
    decoder: torch.nn.Module | None = None
    budget: float = 0
    started: float = field(default_factory=lambda: time.perf_counter())
    spent: float = 0.0  # seconds spent on this job's previews

    def due(self, calls_done: int, calls: int, latents: torch.Tensor | None = None) -> bool:
        """After this many model calls of `calls`: the last step shows the final image instead."""
        if not (self.every > 0 and calls_done % self.every == 0 and calls_done < calls):
            return False
        if self.budget <= 0 or latents is None:
            return True
        cost = _costs.get(self._cost_key(latents))
        if cost is None:
            return True  # never measured: this one measures it
        share = self.budget / 100
        sampling = time.perf_counter() - self.started - self.spent
        return self.spent + cost <= share / (1 - share) * sampling if share < 1 else True

    def _cost_key(self, latents: torch.Tensor) -> tuple:
        return self.method, self.decoder is not None, tuple(latents.shape[1:]), latents.dtype

    @torch.no_grad()
    def image(self, vae, latents: torch.Tensor, family: Family, size: tuple[int, int]) -> Image.Image | None:
        """The first image of the batch, `size` (the final picture's width, height)."""
        started = time.perf_counter()
        try:
            return self._image(vae, latents, family, size)
        finally:
            seconds = time.perf_counter() - started
            self.spent += seconds
            _costs[self._cost_key(latents)] = seconds

    def _image(self, vae, latents: torch.Tensor, family: Family, size: tuple[int, int]) -> Image.Image | None:
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
    budget = backend.settings.get(BUDGET_SETTING)
    budget = budget if isinstance(budget, (int, float)) and not isinstance(budget, bool) else DEFAULT_BUDGET
    if method not in METHODS:
        log.warning("show_progress_type %r is none of %s; showing Approx cheap previews", method, ", ".join(METHODS))
        method = APPROX_CHEAP
    if method not in (APPROX_NN, TAESD) or every <= 0:
        yield Previewer(method, every, budget=budget)
        return
    with backend.manager.preview_decoder(method, family.latent) as decoder:
        yield Previewer(method if decoder is not None else APPROX_CHEAP, every, decoder, budget=budget)
