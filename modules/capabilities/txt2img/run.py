"""txt2img: a pure function of a validated request, a loaded checkpoint, a job to report to, and the
runner's hooks (extension scripts, saving). It never changes the cached pipeline: the job's sampler lives
in a per-job view of it (modules/capabilities/pipeline_view.py)."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from modules.capabilities.base import GenerationFailed, SaveSpec
from modules.capabilities.pipeline_view import pipeline_view
from modules.capabilities.refiner import Refiner, refiner_for
from modules.capabilities.refiner_switch import switching
from modules.capabilities.scripting import Hooks, ImageNotSaved
from modules.capabilities.txt2img.hires import hires_infotext
from modules.capabilities.txt2img.request import MAX_SEED, Txt2ImgRequest
from modules.capabilities.txt2img.vae_precision import decode_without_nans
from modules.generation import preview, stop_points
from modules.generation.infotext import format_infotext
from modules.generation.prompt_embeds import encode_prompts
from modules.generation.samplers import find_sampler
from modules.jobs import Interrupted, Job, Skipped
from modules.models.manager import LoadedCheckpoint
from modules.networks.loras import use_loras
from modules.networks.prompt_tags import prompt_text
from modules.version import VERSION

@dataclass
class Txt2ImgResult:
    request: Txt2ImgRequest
    images: list[Image.Image] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    checkpoint_title: str = ""
    save_errors: list[str] = field(default_factory=list)
    index_of_first_image: int = 0  # 1 when a batch grid comes first (modules/generation/batch_grid.py)

    def info(self) -> dict:
        """A1111's `info` JSON for the API."""
        r, count = self.request, len(self.images) - self.index_of_first_image
        return {
            "prompt": r.prompt, "all_prompts": [r.prompt] * count,
            "negative_prompt": r.negative_prompt, "all_negative_prompts": [r.negative_prompt] * count,
            "seed": self.seeds[0] if self.seeds else r.seed, "all_seeds": self.seeds[self.index_of_first_image:],
            "index_of_first_image": self.index_of_first_image,
            "width": r.width, "height": r.height, "enable_hr": r.enable_hr,
            "denoising_strength": r.denoising_strength if r.enable_hr else 0, "sampler_name": r.sampler,
            "cfg_scale": r.cfg_scale,
            "steps": r.steps, "batch_size": r.batch_size, "n_iter": r.batch_count, "clip_skip": r.clip_skip,
            "sd_model_name": self.checkpoint_title, "infotexts": self.infotexts, "version": VERSION,
        }


def resolve_seed(seed: int) -> int:
    return random.randrange(0, MAX_SEED + 1) if seed == -1 else seed


def infotext(request: Txt2ImgRequest, seed: int, model: LoadedCheckpoint, extra: dict | None = None) -> str:
    return format_infotext(request.prompt, request.negative_prompt, {
        "Steps": request.steps, "Sampler": request.sampler, "CFG scale": f"{request.cfg_scale:g}",
        "Seed": seed, "Size": f"{request.width}x{request.height}",
        "Model hash": model.info.shorthash, "Model": model.info.model_name,
        "Clip skip": request.clip_skip if request.clip_skip > 1 else None,
        **hires_infotext(request),
        **(extra or {}),
        "Version": VERSION,
    })


def initial_noise(generators: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    """Noise drawn on the CPU, one generator per image: a seed gives the same image on any device
    and whatever batch it is part of. The same generators then feed the sampler's own noise."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators])


def txt2img(request: Txt2ImgRequest, model: LoadedCheckpoint, job: Job, hooks: Hooks) -> Txt2ImgResult:
    """Run every batch of `request` on `model`; each image goes through hooks.image_ready as it is made
    (saved when request.save_images), so an interrupt keeps the images finished so far."""
    from modules.models.loader import pipeline_class

    pipeline_class(model.info, "txt2img")  # an inpainting checkpoint is refused here, naming the file
    result = Txt2ImgResult(request, checkpoint_title=model.info.title)
    first_seed = resolve_seed(request.seed)
    if request.enable_hr:  # img2img's sampling does the second pass (imported here: img2img imports this module)
        from modules.capabilities.txt2img.hires_pass import hires_steps, second_pass
    job.start(request.batch_count, request.steps + (hires_steps(request) if request.enable_hr else 0))
    backend = hooks.p.backend if hooks.p is not None else None
    manager = backend.manager if backend is not None else None
    switch_loras = request.enable_hr and request.hr_loras != request.loras  # the hires prompt names others
    use_loras(model, request.loras, hooks)
    with refiner_for(request, model, manager) as refiner, \
            preview.previewing(backend, model.info.architecture.spec) as previewer:
        for batch in range(request.batch_count):
            job.begin_batch(batch)
            seeds = [(first_seed + batch * request.batch_size + i) % (MAX_SEED + 1) for i in range(request.batch_size)]
            hooks.process_batch(batch, [request.prompt] * len(seeds), seeds)
            stopped, steps_done, first = False, request.steps, None
            try:
                if switch_loras and batch:
                    use_loras(model, request.loras, hooks)
                # With hires fix the refiner works in the second pass (A1111's default), else in this one.
                latents = _sample(request, model, seeds, job, None if request.enable_hr else refiner, previewer)
                if request.enable_hr:  # the second pass, in this job and this hold on the device
                    if switch_loras:
                        use_loras(model, request.hr_loras, hooks)
                    first, latents = latents, None
                    latents = second_pass(request, model, first, seeds, job, manager, refiner, previewer)
            except (Interrupted, Skipped) as stop:
                # Before the first step ended there is nothing but noise: no image. Later, A1111's way: the
                # images of the latents sampled so far.
                latents, steps_done = stop.args if len(stop.args) == 2 else (None, 0)
                if latents is None and request.enable_hr and steps_done == request.steps:
                    latents = first  # stopped before the second pass's first step: the first pass's images
                stopped = isinstance(stop, Interrupted)
            if latents is not None:
                try:
                    _collect(result, request, model, seeds, latents, hooks, job, steps_done, refiner)
                except Interrupted:  # pressed (again) while decoding, or the client left: keep the images decoded
                    stopped = True
            if stopped:
                break
    return result


def _collect(result: Txt2ImgResult, request: Txt2ImgRequest, model: LoadedCheckpoint, seeds: list[int],
             latents: torch.Tensor, hooks: Hooks, job: Job, steps_done: int, refiner: Refiner | None = None) -> None:
    """Decode, post-process and save the batch's images one by one: an Interrupt pressed meanwhile (or a
    client that leaves) stops before the next image, or inside the VAE, keeping the images done so far."""
    if not torch.isfinite(latents).all():
        raise GenerationFailed("the sampler produced NaN values; try another sampler, fewer steps, "
                               "or --precision fp32")
    extra = {**(refiner.infotext() if refiner is not None else {}), **hooks.extra_infotext()}
    if steps_done < request.steps:
        extra["Stopped at step"] = steps_done  # "Steps" stays what was asked, so pasting it back still works
    interrupts = job.interrupts

    def check() -> None:
        job.check_decoding(interrupts)

    vae = model.info.architecture.spec.vae_of(model.pipe)
    with stop_points.checked(getattr(vae, "decoder", None), check):
        for index, (latent, seed) in enumerate(zip(latents, seeds)):
            check()
            image = preview.to_pil(decode_without_nans(vae, latent[None]))[0]
            text = infotext(request, seed, model, extra)
            save_to = SaveSpec("txt2img-images", seed) if request.save_images else None
            try:
                image, path = hooks.image_ready(image, text, seed, index, save_to)
                if path is not None:
                    result.paths.append(path)
            except ImageNotSaved as e:  # a full disk loses the file, never the image: the user still gets it
                image = e.image
                result.save_errors.append(str(e))
            image.info["parameters"] = text
            result.images.append(image)
            result.infotexts.append(text)
            result.seeds.append(seed)


def _sample(request: Txt2ImgRequest, model: LoadedCheckpoint, seeds: list[int], job: Job,
            refiner: Refiner | None = None, previewer: preview.Previewer | None = None) -> torch.Tensor:
    # This job's own scheduler, in its own view of the cached pipeline: the cached one is never changed.
    family = model.info.architecture.spec
    sampler = find_sampler(request.sampler).build(family.scheduler_config(model.scheduler_config))
    pipe = pipeline_view(model.pipe, scheduler=sampler)
    denoiser = family.denoiser_of(pipe)
    scale = pipe.vae_scale_factor
    shape = (denoiser.config.in_channels, request.height // scale, request.width // scale)
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    noise = initial_noise(generators, shape).to(model.execution_device, model.devices.dtype)
    prompts, negative_prompts = [prompt_text(request.prompt)] * len(seeds), [request.negative_prompt] * len(seeds)
    embeds = encode_prompts(pipe, prompts, negative_prompts, clip_skip=request.clip_skip)
    latest: dict = {"latents": None, "steps": 0}
    previewer = previewer or preview.Previewer()

    def on_step_end(pipeline, step: int, timestep, callback_kwargs: dict) -> dict:
        # Second-order samplers (DPM2, Heun) call back once per model evaluation, up to twice per step:
        # progress and "Stopped at step" count the user's steps ("step 25/20" before).
        calls = len(getattr(pipeline.scheduler, "timesteps", ())) or request.steps
        done = min(request.steps, math.ceil((step + 1) * request.steps / calls))
        latest["latents"], latest["steps"] = callback_kwargs["latents"], done
        job.report_step(done)
        if previewer.due(step + 1, calls):
            image = previewer.image(family.vae_of(pipe), latest["latents"], family, (request.width, request.height))
            if image is not None:
                job.set_preview(image)
        return callback_kwargs

    job.check()
    try:
        # Checked between steps (on_step_end) and inside each step, before every denoiser block.
        with torch.inference_mode(), stop_points.checked(denoiser, job.check), \
                switching(pipe, family, refiner, prompts, negative_prompts, request.clip_skip, job,
                          model.devices.offload):
            output = pipe(
                **embeds,
                num_inference_steps=request.steps,
                guidance_scale=request.cfg_scale,
                width=request.width,
                height=request.height,
                latents=noise,
                generator=generators,
                output_type="latent",
                callback_on_step_end=on_step_end,
            )
    except (Interrupted, Skipped) as stop:  # with what was sampled so far (None before the first step ended)
        raise type(stop)(latest["latents"], latest["steps"]) from None
    return output.images
