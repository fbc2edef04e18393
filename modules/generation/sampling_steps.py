"""The step-end callback every sampling run hands diffusers: the user's steps counted from the model calls,
progress and a preview every few steps on the job, the latest latents kept for an interrupt, and prompt
editing's conditioning switched at its steps (scheduled_embeds.py).

Second-order samplers (Heun, DPM2) call back once per model evaluation, up to twice per step: progress and
"Stopped at step" count the user's steps, and both calls of a step get that step's conditioning."""
from __future__ import annotations

import contextlib
import math

from modules import compat
from modules.generation.sampling_context import SamplingContext
from modules.generation.transformer_conditioning import TransformerConditioning
from modules.errors import InvalidRequest

TENSOR_INPUTS = compat.STEP_END_TENSOR_INPUTS


def tensor_inputs(pipe) -> list[str]:
    """The step-end tensors this pipeline hands its callback, of those prompt editing uses (FLUX's and SD3's
    pipelines name fewer than SD's, and refuse a name they do not know)."""
    known = set(getattr(pipe, "_callback_tensor_inputs", TENSOR_INPUTS))
    return [name for name in TENSOR_INPUTS if name in known]


class StepCallback:
    """`callback_on_step_end` for a run of `steps` user steps (with `callback_on_step_end_tensor_inputs=
    TENSOR_INPUTS`), reporting to the context's job and previewer. `latents` and `steps_done`: the latest, for an
    interrupted run."""

    def __init__(self, context: SamplingContext, steps: int, vae, family, conditioning=None,
                 unpack=lambda latents: latents, size: tuple[int, int] | None = None, true_cfg: bool = False):
        self.job, self.steps, self.vae, self.family = context.job, steps, vae, family
        self.previewer = context.previewer  # the job's method and frequency (the settings)
        self.size = size  # the final picture's (width, height): previews are shown at it
        self.conditioning = conditioning if conditioning is not None and conditioning.changes else None
        # SD3/FLUX: the transformer's inputs are switched instead (transformer_conditioning.py says why)
        self.transformer_inputs = None
        if self.conditioning is not None and "prompt editing" in family.refusals:
            raise InvalidRequest("prompt", family.refusals["prompt editing"])
        if self.conditioning is not None and family.sampler_kind == "flow":
            self.transformer_inputs = TransformerConditioning(self.conditioning, true_cfg=true_cfg)
        self.unpack = unpack  # FLUX's pipeline hands packed latents; previews and interrupts want (B, C, H, W)
        self.latents = None
        self.steps_done = 0

    def __call__(self, pipeline, call: int, timestep, callback_kwargs: dict) -> dict:
        calls = getattr(pipeline, "num_timesteps", None) or self.steps  # the model calls of the steps run
        done = min(self.steps, math.ceil((call + 1) * self.steps / calls))
        self.latents, self.steps_done = self.unpack(callback_kwargs["latents"]), done
        self.job.report_step(done)
        if self.previewer.due(call + 1, calls, self.latents):
            size = self.size or (self.latents.shape[-1] * 8, self.latents.shape[-2] * 8)
            image = self.previewer.image(self.vae, self.latents, self.family, size)
            if image is not None:
                self.job.set_preview(image)
        outputs = {"latents": callback_kwargs["latents"]}
        if self.conditioning is not None and call + 1 < calls:
            # The step of a model call: floor(call × steps / calls) maps both of a second-order step's calls
            # (1 + 2 × (steps - 1) of them) to it, and is the call itself for one call per step.
            if self.transformer_inputs is not None:
                self.transformer_inputs.step_ended((call + 1) * self.steps // calls)
            else:
                outputs.update(self.conditioning.switch(pipeline, call * self.steps // calls,
                                                        (call + 1) * self.steps // calls, callback_kwargs))
        return outputs

    def conditioning_denoiser(self, denoiser):
        """The context the pipeline runs in: on SD3/FLUX with prompt editing, their transformer's text inputs
        switched at the steps; otherwise nothing."""
        if self.transformer_inputs is None:
            return contextlib.nullcontext()
        return self.transformer_inputs.hooked(denoiser)
