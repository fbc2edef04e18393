"""txt2img: a pure function of a validated request, a loaded checkpoint, a job to report to, and the
runner's hooks (extension scripts, saving). It never changes the cached pipeline: the job's sampler lives
in a per-job view of it (modules/capabilities/pipeline_view.py)."""
from __future__ import annotations

import datetime
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from modules.capabilities.base import SaveSpec
from modules.capabilities.batch_images import batch_infotext, decoding, keep_image
from modules.capabilities.face_restore_step import restored
from modules.capabilities.job_sampling import job_sampling
from modules.capabilities.pipeline_view import pipeline_view
from modules.capabilities.refiner_switch import switching
from modules.capabilities.scripting import Hooks
from modules.capabilities.txt2img.hires import hires_infotext
from modules.capabilities.txt2img.request import MAX_SEED, Txt2ImgRequest
from modules.generation import eta_noise_seed_delta, sampling_steps, stop_points
from modules.generation.infotext import format_infotext
from modules.generation.sampling_context import SamplingContext
from modules.generation.sampling_steps import StepCallback
from modules.generation.scheduled_embeds import encode_scheduled
from modules.generation import samplers
from modules.generation import guidance
from modules.generation.guidance import guidance_arguments, real_cfg
from modules.generation.samplers import build_sampler, infotext_schedule
from modules.generation.seeds import image_noise
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
    subseeds: list[int] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    checkpoint_title: str = ""
    save_errors: list[str] = field(default_factory=list)
    index_of_first_image: int = 0  # 1 when a batch grid comes first (modules/generation/batch_grid.py)
    model_hash: str | None = None
    vae_name: str | None = None  # a VAE file's name (the sd_vae option), None: the checkpoint's own
    vae_hash: str | None = None
    extra_generation_params: dict = field(default_factory=dict)  # what scripts added to the infotext
    job_timestamp: str = field(default_factory=lambda: datetime.datetime.now().strftime("%Y%m%d%H%M%S"))

    def info(self) -> dict:
        """A1111's `info` JSON for the API."""
        r, count = self.request, len(self.images) - self.index_of_first_image
        return {
            "prompt": r.prompt, "all_prompts": [r.prompt] * count,
            "negative_prompt": r.negative_prompt, "all_negative_prompts": [r.negative_prompt] * count,
            "seed": self.seeds[0] if self.seeds else r.seed, "all_seeds": self.seeds[self.index_of_first_image:],
            "subseed": self.subseeds[0] if self.subseeds else r.subseed,
            "all_subseeds": self.subseeds[self.index_of_first_image:], "subseed_strength": r.subseed_strength,
            "seed_resize_from_w": r.seed_resize_from_w or -1, "seed_resize_from_h": r.seed_resize_from_h or -1,
            "index_of_first_image": self.index_of_first_image,
            "width": r.width, "height": r.height, "enable_hr": r.enable_hr,
            "denoising_strength": r.denoising_strength if r.enable_hr else 0, "sampler_name": r.sampler,
            "scheduler": r.scheduler,
            "cfg_scale": r.cfg_scale, "distilled_cfg_scale": r.distilled_cfg_scale,
            "styles": list(r.applied_styles),
            "steps": r.steps, "batch_size": r.batch_size, "n_iter": r.batch_count, "clip_skip": r.clip_skip,
            "sd_model_name": self.checkpoint_title, "infotexts": self.infotexts, "version": VERSION,
            # A1111's other keys (Processed.js())
            "restore_faces": bool(r.restore_faces), "face_restoration_model": r.face_restorer if r.restore_faces else None,
            "sd_model_hash": self.model_hash, "sd_vae_name": self.vae_name, "sd_vae_hash": self.vae_hash,
            "extra_generation_params": {key: value for key, value in self.extra_generation_params.items()
                                        if isinstance(value, (str, int, float, bool)) or value is None},
            "job_timestamp": self.job_timestamp, "is_using_inpainting_conditioning": False,
            "tiling": r.tiling,
        }


def resolve_seed(seed: int) -> int:
    return random.randrange(0, MAX_SEED + 1) if seed == -1 else seed


def variation_infotext(request: Txt2ImgRequest, subseed: int) -> dict:
    """A1111's variation seed fields (none when the variation strength is 0 and the seed is not resized)."""
    varied = request.subseed_strength != 0
    resized = request.seed_resize_from_w > 0 and request.seed_resize_from_h > 0
    return {"Variation seed": subseed if varied else None,
            "Variation seed strength": f"{request.subseed_strength:g}" if varied else None,
            "Seed resize from": f"{request.seed_resize_from_w}x{request.seed_resize_from_h}" if resized else None}


def batch_seeds(request: Txt2ImgRequest, first_seed: int, first_subseed: int, batch: int) -> tuple[list, list]:
    """The batch's seeds and variation seeds, as A1111 numbers them: with a variation strength every image
    keeps the seed and the variation seed counts up; without, the seed counts up."""
    numbers = range(batch * request.batch_size, (batch + 1) * request.batch_size)
    varied = request.subseed_strength != 0
    seeds = [(first_seed + (0 if varied else n)) % (MAX_SEED + 1) for n in numbers]
    return seeds, [(first_subseed + n) % (MAX_SEED + 1) for n in numbers]


def infotext(request: Txt2ImgRequest, seed: int, model: LoadedCheckpoint, extra: dict | None = None,
             subseed: int = -1) -> str:
    return format_infotext(request.prompt, request.negative_prompt, {
        "Steps": request.steps, "Sampler": request.sampler,
        "Schedule type": infotext_schedule(request.sampler, request.scheduler), "CFG scale": f"{request.cfg_scale:g}",
        **guidance.infotext_fields(request, model.info.architecture.spec),
        "Seed": seed, "Size": f"{request.width}x{request.height}",
        **variation_infotext(request, subseed),
        "Model hash": model.info.shorthash, "Model": model.info.model_name,
        "Clip skip": request.clip_skip if request.clip_skip > 1 else None,
        "ENSD": eta_noise_seed_delta.infotext_value(request.sampler, request.eta_noise_seed_delta),
        "Tiling": True if request.tiling else None,
        # Forge's way of naming the component files a checkpoint was completed with
        **{f"Module {i}": name for i, name in enumerate(request.forge_additional_modules, 1)},
        **hires_infotext(request),
        **(extra or {}),
        "Version": VERSION,
    })


def initial_noise(generators: list[torch.Generator], shape: tuple[int, ...], request: Txt2ImgRequest | None = None,
                  seeds: list[int] = (), subseeds: list[int] = (), scale: int = 8) -> torch.Tensor:
    """Noise drawn on the CPU, one generator per image: a seed gives the same image on any device
    and whatever batch it is part of. The same generators then feed the sampler's own noise. With a
    request: its variation seed and seed resize, as A1111 blends them (modules/generation/seeds.py)."""
    if request is None:
        return torch.stack([torch.randn(shape, generator=g) for g in generators])
    resize = (request.seed_resize_from_w, request.seed_resize_from_h)
    return torch.stack([image_noise(g, seed, shape, subseed, request.subseed_strength, resize, scale)
                        for g, seed, subseed in zip(generators, seeds, subseeds)])


def txt2img(request: Txt2ImgRequest, model: LoadedCheckpoint, job: Job, hooks: Hooks) -> Txt2ImgResult:
    """Run every batch of `request` on `model`; each image goes through hooks.image_ready as it is made
    (saved when request.save_images), so an interrupt keeps the images finished so far."""
    from modules.models.loader import pipeline_class

    pipeline_class(model.info, "txt2img")  # an inpainting checkpoint is refused here, naming the file
    result = Txt2ImgResult(request, checkpoint_title=model.info.title, model_hash=model.info.shorthash or None)
    first_seed, first_subseed = resolve_seed(request.seed), resolve_seed(request.subseed)
    if request.enable_hr:  # img2img's sampling does the second pass (imported here: img2img imports this module)
        from modules.capabilities.txt2img.hires_pass import hires_steps, second_pass
    job.start(request.batch_count, request.steps + (hires_steps(request) if request.enable_hr else 0))
    switch_loras = request.enable_hr and request.hr_loras != request.loras  # the hires prompt names others
    use_loras(model, request.loras, hooks)
    with job_sampling(request, model, job, hooks) as context:
        for batch in range(request.batch_count):
            job.begin_batch(batch)
            seeds, subseeds = batch_seeds(request, first_seed, first_subseed, batch)
            batch_context = context.for_batch(seeds, subseeds)
            hooks.process_batch(batch, [request.prompt] * len(seeds), seeds)
            stopped, steps_done, first = False, request.steps, None
            try:
                if switch_loras and batch:
                    use_loras(model, request.loras, hooks)
                # With hires fix the refiner works in the second pass (A1111's default), else in this one.
                latents = _sample(request, model,
                                  batch_context.without_refiner() if request.enable_hr else batch_context)
                if request.enable_hr:  # the second pass, in this job and this hold on the device
                    if switch_loras:
                        use_loras(model, request.hr_loras, hooks)
                    first, latents = latents, None
                    latents = second_pass(request, model, first, batch_context)
            except (Interrupted, Skipped) as stop:
                # Before the first step ended there is nothing but noise: no image. Later, A1111's way: the
                # images of the latents sampled so far.
                latents, steps_done = stop.args if len(stop.args) == 2 else (None, 0)
                if latents is None and request.enable_hr and steps_done == request.steps:
                    latents = first  # stopped before the second pass's first step: the first pass's images
                stopped = isinstance(stop, Interrupted)
            if latents is not None:
                try:
                    _collect(result, request, model, latents, hooks, steps_done, batch_context)
                except Interrupted:  # pressed (again) while decoding, or the client left: keep the images decoded
                    stopped = True
            if stopped:
                break
    return result


def _collect(result: Txt2ImgResult, request: Txt2ImgRequest, model: LoadedCheckpoint, latents: torch.Tensor,
             hooks: Hooks, steps_done: int, context: SamplingContext) -> None:
    """Decode, post-process and save the batch's images one by one: an Interrupt pressed meanwhile (or a
    client that leaves) stops before the next image, or inside the VAE, keeping the images done so far."""
    extra = batch_infotext(result, request, latents, hooks, context)
    if steps_done < request.steps:
        extra["Stopped at step"] = steps_done  # "Steps" stays what was asked, so pasting it back still works
    with decoding(model, context.job) as (decode, check):
        for index, (latent, seed, subseed) in enumerate(zip(latents, context.seeds, context.subseeds)):
            image = restored(decode(latent), request, hooks, check)
            text = infotext(request, seed, model, extra, subseed)
            save_to = SaveSpec("txt2img-images", seed) if request.save_images else None
            keep_image(result, image, text, seed, subseed, index, save_to, hooks)


def _sample(request: Txt2ImgRequest, model: LoadedCheckpoint, context: SamplingContext) -> torch.Tensor:
    # This job's own scheduler, in its own view of the cached pipeline: the cached one is never changed.
    job, seeds = context.job, context.seeds
    family = model.info.architecture.spec
    sampler, schedule_args = build_sampler(request.sampler, request.scheduler,
                                           family.scheduler_config(model.scheduler_config), request.steps, family)
    device = model.execution_device
    pipe = pipeline_view(model.pipe, execution_device=device, scheduler=sampler)
    denoiser = family.denoiser_of(pipe)
    scale = pipe.vae_scale_factor
    shape = (family.latent.channels, request.height // scale, request.width // scale)
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    noise = initial_noise(generators, shape, request, seeds, context.subseeds, scale).to(device, model.devices.dtype)
    eta_noise_seed_delta.reseed_at_first_step(sampler, generators, seeds, request.eta_noise_seed_delta)
    prompts, negative_prompts = [prompt_text(request.prompt)] * len(seeds), [request.negative_prompt] * len(seeds)
    embeds = encode_scheduled(pipe, prompt_text(request.prompt), request.negative_prompt, context, request.steps,
                              request.steps, clip_skip=request.clip_skip)

    def unpacked(latents):  # FLUX's pipeline works on packed 2x2 patches; everything else here on (B, C, H, W)
        return None if latents is None else family.unpack_latents(latents, pipe, request.height, request.width)

    on_step_end = StepCallback(context, request.steps, family.vae_of(pipe), family, embeds, unpack=unpacked,
                               size=(request.width, request.height), true_cfg=real_cfg(request, family))

    job.check()
    try:
        # Checked between steps (on_step_end) and inside each step, before every denoiser block.
        with torch.inference_mode(), stop_points.checked(denoiser, job.check, request.width * request.height), \
                switching(pipe, family, context, prompts, negative_prompts, request.clip_skip,
                          model.devices.offload), on_step_end.conditioning_denoiser(denoiser):
            output = pipe(
                **guidance_arguments(request, family, embeds.arguments()),
                num_inference_steps=request.steps,
                width=request.width,
                height=request.height,
                latents=family.pack_latents(noise, pipe),
                generator=generators,
                output_type="latent",
                callback_on_step_end=on_step_end,
                callback_on_step_end_tensor_inputs=sampling_steps.tensor_inputs(pipe),
                **schedule_args,
            )
    except (Interrupted, Skipped) as stop:  # with what was sampled so far (None before the first step ended)
        raise type(stop)(on_step_end.latents, on_step_end.steps_done) from None
    return unpacked(output.images)
