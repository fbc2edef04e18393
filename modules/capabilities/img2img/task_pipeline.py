"""The img2img or inpaint pipeline of a cached checkpoint: a new pipeline object of the family's class for the
task around the cached pipeline's own modules (no weight copied, nothing moved, no dtype changed) and the
job's own scheduler.

Not diffusers' `from_pipe`: in 0.42 it ends with `.to(dtype)` on the shared modules (see pipeline_view.py).
Constructing the class from the same components only registers them, as `from_pipe` does before that call."""
from __future__ import annotations

import inspect

import diffusers

from modules.compat import reads_latents, with_execution_device
from modules.errors import UserError


def task_pipeline(model, task: str, scheduler):
    """`task` ("img2img" or "inpaint") pipeline over `model.pipe`'s modules, with `scheduler`."""
    info = model.info
    family = info.architecture.spec
    name = family.pipeline_name(task)
    if name is None:
        raise UserError(f"{info.title}: " + family.refusals.get(task, f"{family.label} models cannot do {task}"))
    cls = getattr(diffusers, name)  # the name comes from our own family files, never from a model file
    pipe = model.pipe
    if type(pipe) is cls:
        from modules.capabilities.pipeline_view import pipeline_view

        return pipeline_view(pipe, execution_device=model.execution_device, scheduler=scheduler)
    parameters = inspect.signature(cls.__init__).parameters
    parts = {name: module for name, module in pipe.components.items() if name in parameters}
    parts["scheduler"] = scheduler
    for name, parameter in parameters.items():  # a component the cached pipeline lacks (image_encoder ...)
        if name not in parts and name != "self" and parameter.default is inspect.Parameter.empty:
            parts[name] = None
    if "requires_safety_checker" in parameters:
        parts["requires_safety_checker"] = False  # A1111 runs none; the cached pipeline was loaded without one
    for name in ("force_zeros_for_empty_prompt", "requires_aesthetics_score"):
        if name in parameters and name in pipe.config:
            parts[name] = pipe.config[name]
    view = cls(**parts)
    # --medvram/--lowvram: the cached pipeline's offload state (diffusers 0.42 internals), as pipeline_view's
    # shallow copy carries it, so the view's maybe_free_model_hooks() offloads the shared modules after the run.
    for attribute in ("_all_hooks", "_offload_device", "_offload_gpu_id"):
        if hasattr(pipe, attribute):
            setattr(view, attribute, getattr(pipe, attribute))
    reads_latents(view, family.latent.channels)  # Z-Image's pipelines expect pictures (diffusers 0.42.1)
    view.set_progress_bar_config(disable=True)  # the job reports progress; no bar in the server's console
    return with_execution_device(view, model.execution_device)  # found once per placement, not at every call
