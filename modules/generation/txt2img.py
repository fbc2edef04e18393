"""txt2img: a pure function of a validated request, a loaded checkpoint and a job to report to."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from modules import images as image_files
from modules.generation import preview, stop_points
from modules.generation.infotext import format_infotext
from modules.generation.prompt_embeds import encode_prompts
from modules.generation.samplers import find_sampler
from modules.generation.txt2img_request import MAX_SEED, Txt2ImgRequest
from modules.jobs import Interrupted, Job, Skipped
from modules.models.manager import LoadedCheckpoint
from modules.public_paths import shown
from modules.version import VERSION

PREVIEW_EVERY_STEPS = 5


class GenerationFailed(RuntimeError):
    """The model produced no usable image (e.g. NaNs); the message says what to try."""


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
            "width": r.width, "height": r.height, "sampler_name": r.sampler, "cfg_scale": r.cfg_scale,
            "steps": r.steps, "batch_size": r.batch_size, "n_iter": r.batch_count, "clip_skip": r.clip_skip,
            "sd_model_name": self.checkpoint_title, "infotexts": self.infotexts, "version": VERSION,
        }


class GenerationHooks:
    """Where always-on extension scripts (modules/extensions) step into a job; by default nothing happens."""

    def process_batch(self, request: Txt2ImgRequest, batch_number: int, prompts: list[str], seeds: list[int]) -> None:
        pass

    def postprocess_image(self, request: Txt2ImgRequest, image: Image.Image, seed: int, index: int) -> Image.Image:
        return image

    def extra_infotext(self) -> dict:
        return {}

    def image_saved(self, image: Image.Image, path: Path, infotext: str) -> None:
        pass


NO_HOOKS = GenerationHooks()


def resolve_seed(seed: int) -> int:
    return random.randrange(0, MAX_SEED + 1) if seed == -1 else seed


def infotext(request: Txt2ImgRequest, seed: int, model: LoadedCheckpoint, extra: dict | None = None) -> str:
    return format_infotext(request.prompt, request.negative_prompt, {
        "Steps": request.steps, "Sampler": request.sampler, "CFG scale": f"{request.cfg_scale:g}",
        "Seed": seed, "Size": f"{request.width}x{request.height}",
        "Model hash": model.info.shorthash, "Model": model.info.model_name,
        "Clip skip": request.clip_skip if request.clip_skip > 1 else None,
        **(extra or {}),
        "Version": VERSION,
    })


def initial_noise(generators: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
    """Noise drawn on the CPU, one generator per image: a seed gives the same image on any device
    and whatever batch it is part of. The same generators then feed the sampler's own noise."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators])


def txt2img(request: Txt2ImgRequest, model: LoadedCheckpoint, job: Job, outdir: Path | None,
            hooks: GenerationHooks = NO_HOOKS) -> Txt2ImgResult:
    """Run every batch of `request` on `model`; saves into outdir when request.save_images."""
    result = Txt2ImgResult(request, checkpoint_title=model.info.title)
    first_seed = resolve_seed(request.seed)
    job.start(request.batch_count, request.steps)
    for batch in range(request.batch_count):
        job.begin_batch(batch)
        seeds = [(first_seed + batch * request.batch_size + i) % (MAX_SEED + 1) for i in range(request.batch_size)]
        hooks.process_batch(request, batch, [request.prompt] * len(seeds), seeds)
        stopped, steps_done = False, request.steps
        try:
            latents = _sample(request, model, seeds, job)
        except (Interrupted, Skipped) as stop:
            # Before the first step ended there is nothing but noise: no image. Later, A1111's way: the
            # images of the latents sampled so far.
            latents, steps_done = stop.args if len(stop.args) == 2 else (None, 0)
            stopped = isinstance(stop, Interrupted)
        if latents is not None:
            try:
                _collect(result, request, model, seeds, latents, outdir, hooks, job, steps_done)
            except Interrupted:  # pressed (again) while decoding, or the client left: keep the images decoded
                stopped = True
        if stopped:
            break
    return result


def _collect(result: Txt2ImgResult, request: Txt2ImgRequest, model: LoadedCheckpoint, seeds: list[int],
             latents: torch.Tensor, outdir: Path | None, hooks: GenerationHooks = NO_HOOKS, job: Job | None = None,
             steps_done: int | None = None) -> None:
    """Decode, post-process and save the batch's images one by one: an Interrupt pressed meanwhile (or a
    client that leaves) stops before the next image, or inside the VAE, keeping the images done so far."""
    if not torch.isfinite(latents).all():
        raise GenerationFailed("the sampler produced NaN values; try another sampler, fewer steps, "
                               "or --precision fp32")
    folder = image_files.output_folder(outdir, "txt2img") if outdir is not None else None
    extra = dict(hooks.extra_infotext())
    if steps_done is not None and steps_done < request.steps:
        extra["Stopped at step"] = steps_done  # "Steps" stays what was asked, so pasting it back still works
    interrupts = job.interrupts if job is not None else 0

    def check() -> None:
        if job is not None:
            job.check_decoding(interrupts)

    vae = model.pipe.vae
    with stop_points.checked(getattr(vae, "decoder", None), check):
        for index, (latent, seed) in enumerate(zip(latents, seeds)):
            check()
            image = preview.to_pil(decode_without_nans(vae, latent[None]))[0]
            image = hooks.postprocess_image(request, image, seed, index)
            text = infotext(request, seed, model, extra)
            if request.save_images and folder is not None:
                try:
                    result.paths.append(image_files.save_image(image, folder, seed, text))
                    hooks.image_saved(image, result.paths[-1], text)
                except OSError as e:  # a full disk loses the file, never the image: the user still gets it
                    result.save_errors.append(f"could not save seed {seed} to {shown(folder)}: {e.strerror or e}")
            image.info["parameters"] = text
            result.images.append(image)
            result.infotexts.append(text)
            result.seeds.append(seed)


def decode_without_nans(vae, latents: torch.Tensor) -> torch.Tensor:
    """Decode; a half-precision VAE that overflows into NaN (a silent black image in other UIs) is
    retried once in fp32, as A1111's --no-half-vae would have done, and a NaN that persists is an error."""
    decoded = preview.decode_latents(vae, latents)
    if torch.isfinite(decoded).all():
        return decoded
    if vae.dtype != torch.float32:
        half = vae.dtype
        vae.to(dtype=torch.float32)  # the device lock is held: no other job sees this VAE meanwhile
        try:
            decoded = preview.decode_latents(vae, latents)
        finally:
            vae.to(dtype=half)
        if torch.isfinite(decoded).all():
            return decoded
    raise GenerationFailed("the VAE produced NaN values (a black image); try --no-half-vae or --precision fp32")


def _sample(request: Txt2ImgRequest, model: LoadedCheckpoint, seeds: list[int], job: Job) -> torch.Tensor:
    pipe = model.pipe
    # The device lock is held, so setting this job's sampler on the shared pipeline is safe.
    pipe.scheduler = find_sampler(request.sampler).build(model.scheduler_config)
    scale = pipe.vae_scale_factor
    shape = (pipe.unet.config.in_channels, request.height // scale, request.width // scale)
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    noise = initial_noise(generators, shape).to(model.execution_device, model.devices.dtype)
    embeds = encode_prompts(pipe, [request.prompt] * len(seeds), [request.negative_prompt] * len(seeds),
                            clip_skip=request.clip_skip)
    latest: dict = {"latents": None, "steps": 0}

    def on_step_end(pipeline, step: int, timestep, callback_kwargs: dict) -> dict:
        # Second-order samplers (DPM2, Heun) call back once per model evaluation, up to twice per step:
        # progress and "Stopped at step" count the user's steps ("step 25/20" before).
        calls = len(getattr(pipeline.scheduler, "timesteps", ())) or request.steps
        done = min(request.steps, math.ceil((step + 1) * request.steps / calls))
        latest["latents"], latest["steps"] = callback_kwargs["latents"], done
        job.report_step(done)
        if (step + 1) % PREVIEW_EVERY_STEPS == 0 and step + 1 < calls:
            image = preview.preview_image(pipe.vae, latest["latents"], model.info.architecture.is_sdxl)
            if image is not None:
                job.set_preview(image)
        return callback_kwargs

    job.check()
    try:
        # Checked between steps (on_step_end) and inside each step, before every UNet block.
        with torch.inference_mode(), stop_points.checked(pipe.unet, job.check):
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
