"""Per-job views of a cached pipeline: a job never changes the pipeline other jobs share.

A view is a new pipeline object holding the same modules (no weight is copied) with the job's own
parts, its scheduler above all: a scheduler keeps per-run state (timesteps, step index), so one
shared object would carry one job's run into the next.

Why not diffusers' `from_pipe`: in diffusers 0.42 it ends with `new_pipeline.to(dtype=torch_dtype or
float32)`, which converts the *shared* modules in place (a half-precision UNet to fp32 under a running
job, or an fp32 VAE of --no-half-vae to fp16 when passed the UNet's dtype). A shallow copy of the
pipeline object shares the same modules and touches none of them."""
from __future__ import annotations

import copy

from modules import compat


def pipeline_view(pipe, execution_device=None, **parts):
    """`pipe` with `parts` (scheduler=...) replaced in the view only; its modules are pipe's own objects.
    `execution_device`: the device the job runs the view on (CachedModel.execution_device), which the view then
    reports without looking for it through every module at each call (compat.with_execution_device)."""
    view = copy.copy(pipe)
    for name, part in parts.items():
        if name not in pipe.components:
            raise ValueError(f"{type(pipe).__name__} has no component {name!r}")
        setattr(view, name, part)  # DiffusionPipeline.__setattr__ updates the view's own config too
    return view if execution_device is None else compat.with_execution_device(view, execution_device)
