"""img2img and inpainting: a pure function of a validated request, a loaded checkpoint, the job and the hooks.

A1111's step semantics: of `steps`, int(steps × denoising_strength) are actually run (the sampler's schedule
is made for `steps` and starts at the strength's point: 20 steps at 0.75 run 15). At strength 0 nothing is
sampled: the picture comes back through the VAE. The infotext says "Steps: 20, Denoising strength: 0.75".

The task's pipeline (the family's img2img or inpaint class) is built around the cached modules with the
job's own scheduler (task_pipeline.py): no weight is copied and the cached pipeline is never changed.
An inpaint (a mask, or outpainting pads) samples the whole picture, or only the masked area's box with
"only masked", and keeps the original wherever the blurred mask does not reach."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from modules.capabilities.base import GenerationFailed, SaveSpec
from modules.capabilities.batch_images import batch_infotext, decoding, keep_image
from modules.capabilities.face_restore_step import restored
from modules.capabilities.img2img import canvas as canvases
from modules.capabilities.img2img.request import (FILL, LATENT_NOISE, LATENT_NOTHING, LATENT_UPSCALE, MASKED_CONTENT,
                                                  Img2ImgRequest)
from modules.capabilities.img2img.task_pipeline import task_pipeline
from modules.capabilities.job_sampling import job_sampling
from modules.capabilities.refiner_switch import switching
from modules.capabilities.scripting import Hooks
from modules.capabilities.txt2img.run import Txt2ImgResult, batch_seeds, initial_noise, resolve_seed, variation_infotext
from modules.compat import with_first_noise
from modules.errors import InvalidRequest
from modules.models.precision_copy import fp32_copy
from modules.generation import eta_noise_seed_delta, guidance, sampling_steps, stop_points, vae_tiles
from modules.generation.infotext import format_infotext
from modules.generation.sampling_context import SamplingContext
from modules.generation.sampling_steps import StepCallback
from modules.generation.scheduled_embeds import encode_scheduled
from modules.generation.guidance import guidance_arguments, real_cfg
from modules.generation.samplers import build_sampler, infotext_schedule
from modules.jobs import Interrupted, Job, Skipped
from modules.models.manager import LoadedCheckpoint
from modules.networks.loras import use_loras
from modules.networks.prompt_tags import prompt_text
from modules.version import VERSION



@dataclass
class Img2ImgResult(Txt2ImgResult):
    def info(self) -> dict:
        r = self.request
        width, height = r.output_size
        return {**super().info(), "width": width, "height": height, "denoising_strength": r.denoising_strength,
                "resize_mode": r.resize_mode, "mask_blur": r.mask_blur, "inpainting_fill": r.inpainting_fill,
                "inpaint_full_res": r.inpaint_full_res, "inpaint_full_res_padding": r.inpaint_full_res_padding,
                "inpainting_mask_invert": int(r.inpainting_mask_invert), "is_using_inpainting_conditioning":
                bool(r.is_inpaint)}


def steps_run(request: Img2ImgRequest) -> int:
    """The sampling steps a job actually runs (A1111's default: steps × denoising strength)."""
    return min(int(request.steps * request.denoising_strength), request.steps)


def infotext(request: Img2ImgRequest, seed: int, model: LoadedCheckpoint, extra: dict | None = None,
             subseed: int = -1) -> str:
    width, height = request.output_size
    inpaint = request.is_inpaint
    pads = (request.pad_left, request.pad_right, request.pad_top, request.pad_bottom)
    return format_infotext(request.prompt, request.negative_prompt, {
        "Steps": request.steps, "Sampler": request.sampler,
        "Schedule type": infotext_schedule(request.sampler, request.scheduler), "CFG scale": f"{request.cfg_scale:g}",
        **guidance.infotext_fields(request, model.info.architecture.spec),
        "Seed": seed, "Size": f"{width}x{height}", **variation_infotext(request, subseed),
        "Model hash": model.info.shorthash, "Model": model.info.model_name,
        "Denoising strength": f"{request.denoising_strength:g}",
        "Clip skip": request.clip_skip if request.clip_skip > 1 else None,
        "ENSD": eta_noise_seed_delta.infotext_value(request.sampler, request.eta_noise_seed_delta),
        "Tiling": True if request.tiling else None,
        "Mask blur": request.mask_blur if inpaint else None,
        "Masked content": MASKED_CONTENT[request.inpainting_fill] if inpaint else None,
        "Inpaint area": "Only masked" if inpaint and request.inpaint_full_res else None,
        "Masked area padding": request.inpaint_full_res_padding if inpaint and request.inpaint_full_res else None,
        "Mask mode": "Inpaint not masked" if request.mask is not None and request.inpainting_mask_invert else None,
        **{f"Pad {side}": pad for side, pad in zip(("left", "right", "top", "bottom"), pads) if pad},
        **{f"Module {i}": name for i, name in enumerate(request.forge_additional_modules, 1)},  # Forge's names
        **(extra or {}),
        "Version": VERSION,
    })


def img2img(request: Img2ImgRequest, model: LoadedCheckpoint, job: Job, hooks: Hooks) -> Img2ImgResult:
    """Run every batch of `request` on `model`; each image goes through hooks.image_ready as it is made (saved
    under outputs/<request.save_folder>/ when request.save_images), so an interrupt keeps the finished ones."""
    result = Img2ImgResult(request, checkpoint_title=model.info.title, model_hash=model.info.shorthash or None)
    first_seed, first_subseed = resolve_seed(request.seed), resolve_seed(request.subseed)
    job.start(request.batch_count, max(steps_run(request), 1))
    use_loras(model, request.loras, hooks)
    with job_sampling(request, model, job, hooks) as context:
        for batch in range(request.batch_count):
            job.begin_batch(batch)
            first = batch * request.batch_size
            seeds, subseeds = batch_seeds(request, first_seed, first_subseed, batch)
            batch_context = context.for_batch(seeds, subseeds)
            inits = [request.init_images[(first + i) % len(request.init_images)] for i in range(request.batch_size)]
            hooks.process_batch(batch, [request.prompt] * len(seeds), seeds)
            work = [_work_area(request, canvases.prepare(request, init)) for init in inits]
            stopped = False
            start = None
            if request.resize_mode == LATENT_UPSCALE and not request.is_inpaint:
                start = encode(model.info.architecture.spec.vae_of(model.pipe), [_own_size(i) for i in inits], model.execution_device,
                               size=request.output_size)
            try:
                latents = denoise(request, model, work, batch_context, start)
                steps_done = steps_run(request)
            except (Interrupted, Skipped) as stop:
                latents, steps_done = stop.args if len(stop.args) == 2 else (None, 0)
                stopped = isinstance(stop, Interrupted)
            if latents is not None:
                try:
                    _collect(result, request, model, latents, work, hooks, steps_done, batch_context)
                except Interrupted:
                    stopped = True
            if stopped:
                break
    return result


@dataclass
class WorkArea:
    """What is sampled for one image: `image`/`mask` at the sampling size, and how it goes back: into
    `canvas` at `box` (only masked), then over the original where `canvas.mask` is."""
    canvas: canvases.Canvas
    image: Image.Image
    mask: Image.Image | None
    box: tuple[int, int, int, int] | None = None


def _work_area(request: Img2ImgRequest, canvas: canvases.Canvas) -> WorkArea:
    if canvas.mask is None:
        return WorkArea(canvas, canvas.image, None)
    image, mask, box = canvas.image, canvas.mask, None
    if request.inpaint_full_res:
        width, height = image.size
        box = canvases.crop_region(canvas.sharp_mask, request.inpaint_full_res_padding, width, height)
        image = image.crop(box).resize((width, height), Image.LANCZOS)
        mask = mask.crop(box).resize((width, height), Image.LANCZOS)
    if request.inpainting_fill == FILL:
        image = canvases.fill(image, mask)
    return WorkArea(canvas, image, mask, box)


def encode(vae, images: list[Image.Image], device, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Pictures → scaled latents (the distribution's mean: a picture always gives the same latents);
    `size`: each picture's latents upscaled to this pixel size afterwards (the latent-upscale resize mode,
    where the pictures keep their own, possibly different, sizes until then)."""
    if size is not None:
        return torch.cat([_upscaled(encode(vae, [image], device), image.width, size) for image in images])
    pixels = torch.stack([torch.from_numpy(np.array(i.convert("RGB"))).permute(2, 0, 1)
                          for i in images]).float() / 127.5 - 1
    with torch.inference_mode():
        latents = vae_tiles.encode_mean(vae, pixels.to(device, vae.dtype))  # in tiles when large
        if not torch.isfinite(latents).all() and vae.dtype != torch.float32:
            # A half-precision VAE that overflows (SDXL's): encoded once more by an fp32 copy, as decoding does.
            full = fp32_copy(vae)
            latents = vae_tiles.encode_mean(full, pixels.to(full.device, torch.float32))
            del full
    if not torch.isfinite(latents).all():
        raise GenerationFailed("the VAE produced NaN values encoding the picture; try --no-half-vae")
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (latents.float() - shift) * vae.config.scaling_factor


def _upscaled(latents: torch.Tensor, width: int, size: tuple[int, int]) -> torch.Tensor:
    scale = max(1, width // latents.shape[-1])  # pixels per latent (8 for SD, 4 for zoo-shapes)
    return F.interpolate(latents, size=(size[1] // scale, size[0] // scale), mode="bilinear",
                         align_corners=False, antialias=True)


def denoise(request: Img2ImgRequest, model: LoadedCheckpoint, work: list[WorkArea], context: SamplingContext,
            start: torch.Tensor | None = None) -> torch.Tensor:
    """The batch's latents after steps × strength of sampling from its work areas (`WorkArea(canvas, image,
    None)` for a plain picture), or from `start`: scaled latents at the work areas' size (a latent upscale).
    The context's refiner, the job's, takes over at its switch point. Hires fix's second pass calls this, its
    context with `first_pass_steps` (prompt editing's timeline goes on). Raises Interrupted/Skipped with
    (latents so far, steps done)."""
    job, seeds, subseeds = context.job, context.seeds, context.subseeds
    family = model.info.architecture.spec
    inpaint = work[0].mask is not None or model.info.architecture.inpainting
    pipe_task = "inpaint" if inpaint else "img2img"
    if family.pipeline_name(pipe_task) is None:  # before any work: the family's reason (the SDXL refiner's txt2img)
        task_pipeline(model, pipe_task, None)
    sampler, schedule_args = build_sampler(request.sampler, request.scheduler,
                                           family.scheduler_config(model.scheduler_config), request.steps, family)
    pipe = task_pipeline(model, pipe_task, sampler)
    vae, device = family.vae_of(pipe), model.execution_device
    width, height = work[0].image.size
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    eta_noise_seed_delta.reseed_at_first_step(sampler, generators, seeds, request.eta_noise_seed_delta)
    job.check()
    latents = start if start is not None else encode(vae, [w.image for w in work], device)
    masks = [w.mask if w.mask is not None else Image.new("L", (width, height), 255) for w in work]
    if inpaint:
        latent_mask = _latent_mask(masks, latents.shape[-2:])
        if request.inpainting_fill == LATENT_NOISE:
            noise = torch.stack([torch.randn(latents.shape[1:], generator=g) for g in generators])
            latents = latents * (1 - latent_mask) + noise * latent_mask
        elif request.inpainting_fill == LATENT_NOTHING:
            latents = latents * (1 - latent_mask)
    run = steps_run(request)
    if run == 0:  # strength 0 (or too few steps for it): the picture itself, through the VAE
        return latents.to(device)
    resized = request.seed_resize_from_w > 0 and request.seed_resize_from_h > 0
    if subseeds and (request.subseed_strength != 0 or resized):
        if inpaint and request.denoising_strength >= 1:  # the pipeline then starts from its own noise alone
            raise InvalidRequest("subseed_strength", "variation seeds and seed resize are not available for "
                                                     "inpainting at denoising strength 1: use 0.99")
        fresh = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        noise = initial_noise(fresh, tuple(latents.shape[1:]), request, seeds, subseeds, pipe.vae_scale_factor)
        # A1111's blended noise where the pipeline adds its own (FLUX's inpaint loop holds it packed)
        with_first_noise(sampler, noise, family.pack_latents(noise, pipe))
    prompts, negative_prompts = [prompt_text(request.prompt)] * len(seeds), [request.negative_prompt] * len(seeds)
    embeds = encode_scheduled(pipe, prompt_text(request.prompt), request.negative_prompt, context, request.steps, run,
                              clip_skip=request.clip_skip)
    dtype = model.devices.dtype
    options: dict = {}
    if inpaint:
        kept = [Image.composite(Image.new("RGB", m.size), w.image, m.point(lambda v: 255 if v >= 128 else 0))
                for w, m in zip(work, masks)]
        options = dict(mask_image=masks, masked_image_latents=encode(vae, kept, device).to(device, dtype),
                       width=width, height=height)
    elif family.sampler_kind == "flow":  # SD3's and FLUX's img2img pipelines size the latents from these
        options = dict(width=width, height=height)
    denoiser = family.denoiser_of(pipe)

    def unpacked(packed):  # FLUX's pipelines work on packed 2x2 patches; everything else here on (B, C, H, W)
        return None if packed is None else family.unpack_latents(packed, pipe, height, width)

    on_step_end = StepCallback(context, run, family.vae_of(pipe), family, embeds, unpack=unpacked, size=(width, height),
                               true_cfg=real_cfg(request, family))

    try:
        with torch.inference_mode(), stop_points.checked(denoiser, job.check, width * height), \
                switching(pipe, family, context, prompts, negative_prompts, request.clip_skip,
                          model.devices.offload), on_step_end.conditioning_denoiser(denoiser):
            output = pipe(**guidance_arguments(request, family, embeds.arguments()), image=latents.to(device, dtype),
                          strength=request.denoising_strength, num_inference_steps=request.steps,
                          generator=generators, output_type="latent", callback_on_step_end=on_step_end,
                          callback_on_step_end_tensor_inputs=sampling_steps.tensor_inputs(pipe),
                          **schedule_args, **options)
    except (Interrupted, Skipped) as stop:
        raise type(stop)(on_step_end.latents, on_step_end.steps_done) from None
    return unpacked(output.images)


def _own_size(init: Image.Image) -> Image.Image:
    """Latent upscale: the init picture at its own size (to a multiple of 8), upscaled as latents later."""
    init = init.convert("RGB")
    width, height = max(8, init.width // 8 * 8), max(8, init.height // 8 * 8)
    return init.resize((width, height), Image.LANCZOS) if init.size != (width, height) else init


def _latent_mask(masks: list[Image.Image], size) -> torch.Tensor:
    """The masks at latent resolution, rounded to 0/1 (A1111's latent mask)."""
    height, width = int(size[0]), int(size[1])
    arrays = [torch.from_numpy(np.array(m.resize((width, height), Image.BILINEAR), dtype=np.float32))
              for m in masks]
    return torch.round(torch.stack(arrays)[:, None] / 255)


def _collect(result: Img2ImgResult, request: Img2ImgRequest, model: LoadedCheckpoint, latents: torch.Tensor,
             work: list[WorkArea], hooks: Hooks, steps_done: int, context: SamplingContext) -> None:
    extra = batch_infotext(result, request, latents, hooks, context)
    if steps_done < steps_run(request):
        extra["Stopped at step"] = steps_done
    with decoding(model, context.job) as (decode, check):
        for index, (latent, seed, subseed, area) in enumerate(zip(latents, context.seeds, context.subseeds, work)):
            image = restored(_put_back(decode(latent), area), request, hooks, check)
            text = infotext(request, seed, model, extra, subseed)
            save_to = SaveSpec(request.save_folder, seed) if request.save_images else None
            keep_image(result, image, text, seed, subseed, index, save_to, hooks)


def _put_back(image: Image.Image, area: WorkArea) -> Image.Image:
    """The sampled picture where it belongs: pasted into its box (only masked), and over the original only
    where the blurred mask is."""
    original = area.canvas.image
    if area.canvas.mask is None:
        return image
    if area.box is not None:
        x1, y1, x2, y2 = area.box
        whole = original.copy()
        whole.paste(image.resize((x2 - x1, y2 - y1), Image.LANCZOS), (x1, y1))
        image = whole
    return canvases.overlay(image, original, area.canvas.mask)
