"""Hires fix's second pass: the first pass's latents upscaled (latent modes) or decoded, upscaled as
images and handed over as images, then an img2img run at the target size. Same job, same device hold."""
from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from PIL import Image

from modules.capabilities.txt2img.hires import LATENT_MODES, hires_steps, target_size
from modules.capabilities.txt2img.vae_precision import decode_without_nans
from modules.generation import preview, stop_points
from modules.generation.prompt_embeds import encode_prompts
from modules.generation.samplers import find_sampler
from modules.jobs import Interrupted, Skipped
from modules.models.loader import pipeline_class

PREVIEW_EVERY_STEPS = 5


def upscale_latents(latents: torch.Tensor, mode: str, size: tuple[int, int], scale: int) -> torch.Tensor:
    width, height = size
    interpolation, antialias = LATENT_MODES[mode]
    return F.interpolate(latents.float(), size=(height // scale, width // scale), mode=interpolation,
                         antialias=antialias).to(latents.dtype)


def upscale_images(images: list[Image.Image], upscaler: str, size: tuple[int, int]) -> list[Image.Image]:
    resample = Image.Resampling.NEAREST if upscaler == "Nearest" else Image.Resampling.LANCZOS
    return [image.resize(size, resample) for image in images]


def img2img_view(model, scheduler):
    """An img2img pipeline over the cached pipeline's own modules (no weight copied, none converted)."""
    cls = pipeline_class(model.info, "img2img")
    expected, optional = cls._get_signature_keys(cls)
    parts = {k: v for k, v in model.pipe.components.items() if k in expected or k in optional}
    parts["scheduler"] = scheduler
    if "requires_safety_checker" in inspect.signature(cls.__init__).parameters:
        parts["requires_safety_checker"] = False  # no checker was loaded for txt2img either
    return cls(**parts)


def second_pass(request, model, latents: torch.Tensor, seeds: list[int], job) -> torch.Tensor:
    """The hires latents of the batch `latents` (first pass, done); progress continues after request.steps.
    Interrupted/Skipped carry (latents so far or None, first-pass steps) as the first pass's do."""
    family = model.info.architecture.spec
    sampler = find_sampler(request.hr_sampler_name or request.sampler)
    pipe = img2img_view(model, sampler.build(family.scheduler_config(model.scheduler_config)))
    size = target_size(request)
    if request.hr_upscaler in LATENT_MODES:
        image = upscale_latents(latents, request.hr_upscaler, size, pipe.vae_scale_factor)
    else:
        first = preview.to_pil(torch.cat([decode_without_nans(pipe.vae, latent[None]) for latent in latents]))
        image = upscale_images(first, request.hr_upscaler, size)
    prompt, negative = request.hr_prompt or request.prompt, request.hr_negative_prompt or request.negative_prompt
    embeds = encode_prompts(pipe, [prompt] * len(seeds), [negative] * len(seeds), clip_skip=request.clip_skip)
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    total = request.hr_second_pass_steps or request.steps
    run_steps = hires_steps(request)
    latest: dict = {"latents": None}
    denoiser = getattr(pipe, family.denoiser)

    def on_step_end(pipeline, step: int, timestep, callback_kwargs: dict) -> dict:
        calls = len(getattr(pipeline.scheduler, "timesteps", ())) or run_steps
        done = min(run_steps, math.ceil((step + 1) * run_steps / max(calls, 1)))
        latest["latents"] = callback_kwargs["latents"]
        job.report_step(request.steps + done)
        if (step + 1) % PREVIEW_EVERY_STEPS == 0 and step + 1 < calls:
            shown = preview.preview_image(pipe.vae, latest["latents"], family)
            if shown is not None:
                job.set_preview(shown)
        return callback_kwargs

    if run_steps == 0:  # denoising strength 0: the upscaled first pass as it is
        return image if isinstance(image, torch.Tensor) else _encode(pipe, image, generators)
    job.check()
    try:
        with torch.inference_mode(), stop_points.checked(denoiser, job.check):
            output = pipe(**embeds, image=image, strength=request.denoising_strength, num_inference_steps=total,
                          guidance_scale=request.cfg_scale, generator=generators, output_type="latent",
                          callback_on_step_end=on_step_end)
    except (Interrupted, Skipped) as stop:
        raise type(stop)(latest["latents"], request.steps) from None
    return output.images


def _encode(pipe, images: list[Image.Image], generators) -> torch.Tensor:
    pixels = pipe.image_processor.preprocess(images).to(pipe.vae.device, pipe.vae.dtype)
    with torch.inference_mode():
        dist = pipe.vae.encode(pixels).latent_dist
    return dist.mode() * pipe.vae.config.scaling_factor
