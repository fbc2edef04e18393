"""A1111's "Tiling": pictures that tile seamlessly, made by padding every convolution circularly (the left
edge sees the right edge, the top sees the bottom) in the denoiser and the VAE, for one job only.

The cached modules are changed for the length of the job and given back as they were: safe because a job
holds the device (modules/models/manager.py), as the stop points are (modules/generation/stop_points.py)."""
from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator

import torch


@contextmanager
def circular_padding(*modules: torch.nn.Module | None) -> Iterator[None]:
    """Every Conv2d of `modules` pads circularly inside the block, and as before afterwards."""
    convs = [layer for module in modules if module is not None for layer in module.modules()
             if isinstance(layer, torch.nn.Conv2d)]
    before = [layer.padding_mode for layer in convs]
    try:
        for layer in convs:
            layer.padding_mode = "circular"
        yield
    finally:
        for layer, mode in zip(convs, before):
            layer.padding_mode = mode


def tiled(run):
    """A capability's run (request, model, job, hooks) that honours `request.tiling`."""
    def run_tiled(request, model, job, hooks):
        if not getattr(request, "tiling", False):
            return run(request, model, job, hooks)
        pipe = model.pipe
        with circular_padding(getattr(pipe, model.info.architecture.spec.denoiser), pipe.vae):
            return run(request, model, job, hooks)
    run_tiled.__wrapped__ = run
    return run_tiled
