"""Hires fix's second pass: the first pass's latents upscaled (latent modes), or its pictures decoded and
upscaled (Lanczos, a model upscaler ...), then img2img's own sampling (modules/capabilities/img2img/run.py
`denoise`) at the target size. Same job, same hold on the device; progress continues after the first pass."""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from PIL import Image

from modules.capabilities.img2img.canvas import Canvas
from modules.capabilities.img2img.request import Img2ImgRequest
from modules.capabilities.img2img.run import WorkArea, denoise, steps_run
from modules.capabilities.txt2img.hires import hires_schedule, target_size
from modules.capabilities.txt2img.vae_precision import decode_without_nans
from modules.generation import preview
from modules.generation.sampling_context import SamplingContext
from modules.jobs import Interrupted, Skipped
from modules.upscalers import is_latent_mode, latent_mode, upscale


def second_pass_request(request) -> Img2ImgRequest:
    """The second pass as an img2img request: hires steps, sampler and prompts where given."""
    width, height = target_size(request)
    return Img2ImgRequest(
        prompt=request.hr_prompt or request.prompt,
        negative_prompt=request.hr_negative_prompt or request.negative_prompt,
        sampler=request.hr_sampler_name or request.sampler, scheduler=hires_schedule(request),
        steps=request.hr_second_pass_steps or request.steps,
        cfg_scale=request.cfg_scale, width=width, height=height, batch_size=request.batch_size,
        checkpoint=request.checkpoint, clip_skip=request.clip_skip, save_images=False,
        refiner_checkpoint=request.refiner_checkpoint, refiner_switch_at=request.refiner_switch_at,
        subseed_strength=request.subseed_strength, seed_resize_from_w=request.seed_resize_from_w,
        seed_resize_from_h=request.seed_resize_from_h,
        denoising_strength=request.denoising_strength, init_images=[Image.new("RGB", (width, height))],
        save_folder="txt2img-images", loras=request.hr_loras)


def hires_steps(request) -> int:
    """Steps the second pass runs (A1111's default: hires steps × denoising strength)."""
    return steps_run(second_pass_request(request))


class _AfterFirstPass:
    """The job as the second pass reports to it: its steps counted after the first pass's."""

    def __init__(self, job, offset: int):
        self._job, self._offset = job, offset

    def report_step(self, step: int) -> None:
        self._job.report_step(self._offset + step)

    def __getattr__(self, name):
        return getattr(self._job, name)


def second_pass(request, model, latents: torch.Tensor, context: SamplingContext) -> torch.Tensor:
    """The batch's hires latents from the first pass's `latents` (the context's refiner, the job's, takes over
    in this pass; modules/capabilities/refiner.py). Raises Interrupted/Skipped with
    (latents so far or None, request.steps) as the first pass does."""
    second = second_pass_request(request)
    job = context.job
    size = (second.width, second.height)
    vae = model.info.architecture.spec.vae_of(model.pipe)
    scale = model.pipe.vae_scale_factor
    if is_latent_mode(request.hr_upscaler):
        mode, antialias = latent_mode(request.hr_upscaler)
        start = F.interpolate(latents.float(), size=(size[1] // scale, size[0] // scale), mode=mode,
                              antialias=antialias)
        work = [WorkArea(Canvas(second.init_images[0], None, None), second.init_images[0], None)] * len(context.seeds)
    else:
        start = None
        firsts = [preview.to_pil(decode_without_nans(vae, latent[None]))[0] for latent in latents]
        bigger = [upscale(image, request.hr_upscaler, size, context.manager, device_held=True, check=job.check)
                  for image in firsts]
        work = [WorkArea(Canvas(image, None, None), image, None) for image in bigger]
    try:
        after_first = replace(context, job=_AfterFirstPass(job, request.steps), first_pass_steps=request.steps)
        return denoise(second, model, work, after_first, start)
    except (Interrupted, Skipped) as stop:  # "Stopped at step" is about the first pass: it was finished
        raise type(stop)(stop.args[0] if len(stop.args) == 2 else None, request.steps) from None
