"""img2img and inpainting: a pure function of a validated request, a loaded checkpoint, the job and the hooks.

A1111's step semantics: of `steps`, int(steps × denoising_strength) are actually run (the sampler's schedule
is made for `steps` and starts at the strength's point: 20 steps at 0.75 run 15). At strength 0 nothing is
sampled: the picture comes back through the VAE. The infotext says "Steps: 20, Denoising strength: 0.75".

The task's pipeline (the family's img2img or inpaint class) is built around the cached modules with the
job's own scheduler (task_pipeline.py): no weight is copied and the cached pipeline is never changed.
An inpaint (a mask, or outpainting pads) samples the whole picture, or only the masked area's box with
"only masked", and keeps the original wherever the blurred mask does not reach."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from modules.capabilities.base import GenerationFailed, SaveSpec
from modules.capabilities.img2img import canvas as canvases
from modules.capabilities.img2img.request import (FILL, LATENT_NOISE, LATENT_NOTHING, LATENT_UPSCALE, MASKED_CONTENT,
                                                  Img2ImgRequest)
from modules.capabilities.img2img.task_pipeline import task_pipeline
from modules.capabilities.refiner import Refiner, refiner_for
from modules.capabilities.refiner_switch import switching
from modules.capabilities.scripting import Hooks, ImageNotSaved
from modules.capabilities.txt2img.request import MAX_SEED
from modules.capabilities.txt2img.run import Txt2ImgResult, resolve_seed
from modules.capabilities.txt2img.vae_precision import decode_without_nans
from modules.models.precision_copy import fp32_copy
from modules.generation import preview, stop_points, vae_tiles
from modules.generation.infotext import format_infotext
from modules.generation.prompt_embeds import encode_prompts
from modules.generation.samplers import find_sampler
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


def infotext(request: Img2ImgRequest, seed: int, model: LoadedCheckpoint, extra: dict | None = None) -> str:
    width, height = request.output_size
    inpaint = request.is_inpaint
    pads = (request.pad_left, request.pad_right, request.pad_top, request.pad_bottom)
    return format_infotext(request.prompt, request.negative_prompt, {
        "Steps": request.steps, "Sampler": request.sampler, "CFG scale": f"{request.cfg_scale:g}",
        "Seed": seed, "Size": f"{width}x{height}",
        "Model hash": model.info.shorthash, "Model": model.info.model_name,
        "Denoising strength": f"{request.denoising_strength:g}",
        "Clip skip": request.clip_skip if request.clip_skip > 1 else None,
        "Mask blur": request.mask_blur if inpaint else None,
        "Masked content": MASKED_CONTENT[request.inpainting_fill] if inpaint else None,
        "Inpaint area": "Only masked" if inpaint and request.inpaint_full_res else None,
        "Masked area padding": request.inpaint_full_res_padding if inpaint and request.inpaint_full_res else None,
        "Mask mode": "Inpaint not masked" if request.mask is not None and request.inpainting_mask_invert else None,
        **{f"Pad {side}": pad for side, pad in zip(("left", "right", "top", "bottom"), pads) if pad},
        **(extra or {}),
        "Version": VERSION,
    })


def img2img(request: Img2ImgRequest, model: LoadedCheckpoint, job: Job, hooks: Hooks) -> Img2ImgResult:
    """Run every batch of `request` on `model`; each image goes through hooks.image_ready as it is made (saved
    under outputs/<request.save_folder>/ when request.save_images), so an interrupt keeps the finished ones."""
    result = Img2ImgResult(request, checkpoint_title=model.info.title)
    first_seed = resolve_seed(request.seed)
    job.start(request.batch_count, max(steps_run(request), 1))
    backend = hooks.p.backend if hooks.p is not None else None
    manager = backend.manager if backend is not None else None
    use_loras(model, request.loras, hooks)
    with refiner_for(request, model, manager) as refiner, \
            preview.previewing(backend, model.info.architecture.spec) as previewer:
        for batch in range(request.batch_count):
            job.begin_batch(batch)
            first = batch * request.batch_size
            seeds = [(first_seed + first + i) % (MAX_SEED + 1) for i in range(request.batch_size)]
            inits = [request.init_images[(first + i) % len(request.init_images)] for i in range(request.batch_size)]
            hooks.process_batch(batch, [request.prompt] * len(seeds), seeds)
            work = [_work_area(request, canvases.prepare(request, init)) for init in inits]
            stopped = False
            start = None
            if request.resize_mode == LATENT_UPSCALE and not request.is_inpaint:
                start = encode(model.info.architecture.spec.vae_of(model.pipe), [_own_size(i) for i in inits], model.execution_device,
                               size=request.output_size)
            try:
                latents = denoise(request, model, job, work, seeds, start, refiner, previewer)
                steps_done = steps_run(request)
            except (Interrupted, Skipped) as stop:
                latents, steps_done = stop.args if len(stop.args) == 2 else (None, 0)
                stopped = isinstance(stop, Interrupted)
            if latents is not None:
                try:
                    _collect(result, request, model, seeds, latents, work, hooks, job, steps_done, refiner)
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


def denoise(request: Img2ImgRequest, model: LoadedCheckpoint, job: Job, work: list[WorkArea],
            seeds: list[int], start: torch.Tensor | None = None, refiner: Refiner | None = None,
            previewer: preview.Previewer | None = None) -> torch.Tensor:
    """The batch's latents after steps × strength of sampling from its work areas (`WorkArea(canvas, image,
    None)` for a plain picture), or from `start`: scaled latents at the work areas' size (a latent upscale).
    `refiner`: the job's, which takes over at its switch point. Hires fix's second pass calls this. Raises Interrupted/Skipped with (latents so far, steps done)."""
    family = model.info.architecture.spec
    inpaint = work[0].mask is not None or model.info.architecture.inpainting
    sampler = find_sampler(request.sampler).build(family.scheduler_config(model.scheduler_config))
    pipe = task_pipeline(model, "inpaint" if inpaint else "img2img", sampler)
    vae, device = family.vae_of(pipe), model.execution_device
    width, height = work[0].image.size
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
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
    prompts, negative_prompts = [prompt_text(request.prompt)] * len(seeds), [request.negative_prompt] * len(seeds)
    embeds = encode_prompts(pipe, prompts, negative_prompts, clip_skip=request.clip_skip)
    dtype = model.devices.dtype
    options: dict = {}
    if inpaint:
        kept = [Image.composite(Image.new("RGB", m.size), w.image, m.point(lambda v: 255 if v >= 128 else 0))
                for w, m in zip(work, masks)]
        options = dict(mask_image=masks, masked_image_latents=encode(vae, kept, device).to(device, dtype),
                       width=width, height=height)
    latest: dict = {"latents": None, "steps": 0}
    denoiser = family.denoiser_of(pipe)
    previewer = previewer or preview.Previewer()

    def on_step_end(pipeline, step: int, timestep, callback_kwargs: dict) -> dict:
        calls = getattr(pipeline, "num_timesteps", None) or run  # the model calls of the steps run
        done = min(run, math.ceil((step + 1) * run / calls))
        latest["latents"], latest["steps"] = callback_kwargs["latents"], done
        job.report_step(done)
        if previewer.due(step + 1, calls):
            image = previewer.image(family.vae_of(pipe), latest["latents"], family, (width, height))
            if image is not None:
                job.set_preview(image)
        return callback_kwargs

    try:
        with torch.inference_mode(), stop_points.checked(denoiser, job.check), \
                switching(pipe, family, refiner, prompts, negative_prompts, request.clip_skip, job,
                          model.devices.offload):
            output = pipe(**embeds, image=latents.to(device, dtype), strength=request.denoising_strength,
                          num_inference_steps=request.steps, guidance_scale=request.cfg_scale,
                          generator=generators, output_type="latent", callback_on_step_end=on_step_end, **options)
    except (Interrupted, Skipped) as stop:
        raise type(stop)(latest["latents"], latest["steps"]) from None
    return output.images


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


def _collect(result: Img2ImgResult, request: Img2ImgRequest, model: LoadedCheckpoint, seeds: list[int],
             latents: torch.Tensor, work: list[WorkArea], hooks: Hooks, job: Job, steps_done: int,
             refiner: Refiner | None = None) -> None:
    if not torch.isfinite(latents).all():
        raise GenerationFailed("the sampler produced NaN values; try another sampler, fewer steps, "
                               "or --precision fp32")
    extra = {**(refiner.infotext() if refiner is not None else {}), **hooks.extra_infotext()}
    if steps_done < steps_run(request):
        extra["Stopped at step"] = steps_done
    interrupts = job.interrupts

    def check() -> None:
        job.check_decoding(interrupts)

    vae = model.info.architecture.spec.vae_of(model.pipe)
    with stop_points.checked(getattr(vae, "decoder", None), check):
        for index, (latent, seed, area) in enumerate(zip(latents, seeds, work)):
            check()
            image = preview.to_pil(decode_without_nans(vae, latent[None]))[0]
            image = _put_back(image, area)
            text = infotext(request, seed, model, extra)
            save_to = SaveSpec(request.save_folder, seed) if request.save_images else None
            try:
                image, path = hooks.image_ready(image, text, seed, index, save_to)
                if path is not None:
                    result.paths.append(path)
            except ImageNotSaved as e:
                image = e.image
                result.save_errors.append(str(e))
            image.info["parameters"] = text
            result.images.append(image)
            result.infotexts.append(text)
            result.seeds.append(seed)


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
