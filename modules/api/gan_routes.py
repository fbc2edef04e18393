"""/zoo/v1/gan: the GAN Sampler over REST, through the same runner as the tab (modules/capabilities/gan).

    POST /zoo/v1/gan/sample   seeds × class (or a seed-plane point, or imported latents) -> base64 PNGs
    POST /zoo/v1/gan/video    an interpolation video between seeds -> base64 GIF or MP4
    POST /zoo/v1/gan/project  image -> latent: the w whose picture is nearest a base64 image (projection.py)
    GET  /zoo/v1/gan/models   the GANs of models/GAN, with their classes

Same login (--api-auth), owners, task ids and 4xx JSON errors as /sdapi/v1 (modules/api/routes.py). GAN jobs do
not wait in the device's line: a GAN is small and runs under its own lock, so it answers while a long Stable
Diffusion job holds the device."""
from __future__ import annotations

import base64
import io
import json
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import Depends, Request
from pydantic import BaseModel, Field

from modules.api.models import TASK_ID_PATTERN
from modules.capabilities.gan import (GanProjectRequest, GanRequest, GanVideoRequest, find_directions, gan, gan_project,
                                      gan_video, model_facts)
from modules.errors import UserError
from modules.extensions import ScriptCall
from modules.images import png_info

if TYPE_CHECKING:
    from modules.api.routes import Api

PREFIX = "/gan"  # under the API's /zoo/v1 router
VIDEO_TYPES = {"gif": "image/gif", "mp4": "video/mp4"}


class GanSampleApiRequest(BaseModel):
    model: str | None = Field(None, description="A GAN of models/GAN by title, name or hash; empty: the first")
    seeds: str | list[int] = Field("0", description='Seeds: a list, or text with ranges such as "0,1,4-6"')
    truncation_psi: float = Field(1.0, description="1: plain; 0: the class's average image; -1 to 2")
    class_name: str | int | None = Field(None, description='A class name or index, "All classes" (a row each), '
                                                           "or empty: the first class")
    truncation_cutoff: int | None = Field(None, description="Models with per-layer styles: truncate layers before it")
    style_mix_seed: int | None = Field(None, description="Models with per-layer styles: mix in this seed's style")
    style_mix_from: int = Field(1, description="... from this layer on (0: every layer)")
    style_mix_to: int | None = Field(None, description="... up to this layer, exclusive (empty: the last)")
    style_mix_seeds: str | list[int] | None = Field(None, description="A style-mixing grid: each of `seeds` (rows) "
                                                    "with each of these seeds' styles (columns)")
    position: list[float] | None = Field(None, description="[x, y] on the seed plane instead of seeds")
    latents: list[dict[str, Any]] | None = Field(None, description='Imported latents instead of seeds: '
                                                 '[{"z": [...], "seed": 5, "class": "circle"}] (the tab\'s export)')
    directions: list[dict[str, Any]] | None = Field(None, description='StyleGAN files: latent edits, [{"direction": '
                                                    '[w_dim numbers], "strength": 3, "layers": [0, 8]}] (see '
                                                    '/zoo/v1/gan/directions)')
    noise_mode: str = Field("const", description="StyleGAN files: const (NVIDIA's default), random (from the seed) "
                                                 "or none")
    translate: list[float] | str | None = Field(None, description="StyleGAN3 files: [x, y], as gen_images.py's "
                                                                  "--translate")
    rotate: float = Field(0.0, description="StyleGAN3 files: degrees, as gen_images.py's --rotate")
    save_images: bool = Field(False, description="Also save the PNGs under outputs/gan-images")
    send_images: bool = True
    task_id: str | None = Field(None, pattern=TASK_ID_PATTERN, description="Your id for /sdapi/v1/progress")
    script_name: str | None = Field(None, description='A GAN Sampler script, e.g. "X/Y/Z plot" (GET '
                                                      '/sdapi/v1/scripts lists them)')
    script_args: list[Any] = Field(default_factory=list, description="Its controls' values, in order")
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict, description='{"title": {"args": [...]}}')


class GanSampleApiResponse(BaseModel):
    images: list[str] = Field(description="Base64 PNGs, each with its infotext `parameters` and latent `zoo_gan` "
                                          "chunks (drop one into the tab's import to restore it)")
    grid: str | None = Field(None, description="Base64 PNG of all images in one grid (two images or more)")
    captions: list[str]
    infotexts: list[str]
    parameters: dict
    info: str = Field(description="JSON text: task_id, task_state, model, seeds, infotexts, states (the latents)")


class GanVideoApiRequest(BaseModel):
    model: str | None = None
    seeds: str | list[int] = Field("0-3", description="The key frames, at least two")
    truncation_psi: float = 1.0
    class_name: str | int | None = Field(None, description="One class for the whole video; empty: the first")
    frames: int = Field(24, description="Frames between two key seeds, 2 to 240")
    fps: int = Field(24, description="1 to 60")
    loop: bool = Field(True, description="End with the way back to the first seed")
    format: str = Field("gif", description="gif, or mp4 where the bundled ffmpeg is present")
    size: int = Field(256, description="Side in pixels, a multiple of 16 (nearest-neighbour upscaling)")
    space: str = Field("w", description="w: lerp in w; z: slerp in z")
    save: bool = Field(False, description="Also save the file under outputs/gan-videos")
    truncation_cutoff: int | None = Field(None, description="Models with per-layer styles: as /zoo/v1/gan/sample's")
    style_mix_seed: int | None = Field(None, description="Every frame takes this seed's styles in the mixed layers")
    style_mix_from: int = 1
    style_mix_to: int | None = None
    noise_mode: str = Field("const", description="StyleGAN files: const, random (the first seed's, every frame), none")
    translate: list[float] | str | None = Field(None, description="StyleGAN3 files: [x, y] for every frame")
    rotate: float = Field(0.0, description="StyleGAN3 files: degrees, every frame")
    task_id: str | None = Field(None, pattern=TASK_ID_PATTERN)


class GanVideoApiResponse(BaseModel):
    video: str | None = Field(description="Base64 of the GIF or MP4 file (none when the job was interrupted)")
    media_type: str
    frame_count: int
    infotext: str
    parameters: dict
    info: str = Field(description="JSON text: task_id, task_state, model")


class GanDirectionsApiRequest(BaseModel):
    model: str | None = None
    method: str = Field("sefa", description="sefa (closed form, from the style weights) or ganspace (PCA of w)")
    layers: list[int] | None = Field(None, description="[from, to): the layers the directions are for; empty: all")
    count: int = Field(8, description="How many directions, 1 to 32")
    class_name: str | int | None = Field(None, description="GANSpace: the class whose w are sampled")


class GanProjectApiRequest(BaseModel):
    model: str | None = None
    image: str = Field(description="Base64 picture (PNG, JPEG, WEBP): centre-cropped square, resized to the model's side")
    steps: int = Field(200, description="Optimisation steps, 1 to 2000 (NVIDIA's projector: 1000)")
    w_plus: bool = Field(False, description="Models with per-layer styles: one w per layer (closer, less editable)")
    class_name: str | int | None = Field(None, description="Conditional models: the class to start from")
    learning_rate: float = Field(0.1, description="Adam's peak learning rate, 0.0001 to 1")
    noise_factor: float = Field(0.05, description="Noise on w at the start, × w's spread; 0: none")
    seed: int = Field(0, description="Seed of that noise")
    loss: str = Field("auto", description="auto (perceptual when models/LPIPS holds VGG16 weights, else pixels), "
                                          "pixels, perceptual, perceptual+pixels")
    task_id: str | None = Field(None, pattern=TASK_ID_PATTERN, description="Your id for /sdapi/v1/progress")


class GanProjectApiResponse(BaseModel):
    image: str | None = Field(description="Base64 PNG of the found latent's picture, with its `zoo_gan` state "
                                          "(none when interrupted before the first step)")
    latent: dict | None = Field(description='{"w": [[w_dim numbers] per layer]}: send it as one of `latents` '
                                            "of /zoo/v1/gan/sample (with directions, ψ ...)")
    psnr: list[float] = Field(description="Peak signal-to-noise ratio (dB) of each step's w against the image")
    steps_done: int
    interrupted: bool
    loss: str = Field(description="The loss used: pixels, perceptual or perceptual+pixels")
    info: str = Field(description="JSON text: task_id, task_state, model")


class GanModelInfo(BaseModel):
    title: str
    model_name: str
    hash: str
    sha256: str | None
    classes: list[str] = Field(description="Class names; empty for an unconditional model")
    z_dim: int
    image_size: int
    layers: int = Field(description="Per-layer styles (truncation cutoff, style mixing); 0: none")


def encode_png(image, chunks: dict[str, str]) -> str:
    """Base64 PNG keeping the text chunks (infotext `parameters` and the latent state)."""
    buffer = io.BytesIO()
    text = {k: v for k, v in chunks.items() if k != "parameters" and isinstance(v, str)}
    image.save(buffer, format="PNG", pnginfo=png_info(chunks.get("parameters", ""), text))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def add_routes(api: "Api") -> None:
    """Add the /zoo/v1/gan routes to the API's /zoo/v1 router."""
    from modules.api.routes import interrupt_on_disconnect

    backend = api.backend
    router = api.zoo_router
    owner_dependency = Depends(api.current_owner)

    def run_job(capability, request, body, owner: str, http: Request, scripts: ScriptCall | None = None):
        async def answer():
            # Refused with a 422 naming the field before any job exists, as /sdapi/v1/txt2img does.
            checked = await anyio.to_thread.run_sync(backend.runner.validate, capability, request, scripts,
                                                     limiter=api._job_threads)
            job = api._new_job(capability.name, body.task_id, owner)
            async with interrupt_on_disconnect(http, job):
                result = await anyio.to_thread.run_sync(backend.runner.run, capability, checked, job, scripts,
                                                     limiter=api._job_threads)
            return job, result
        return answer()

    @router.post(PREFIX + "/sample", tags=["zoo: GAN"], response_model=GanSampleApiResponse)
    async def sample(body: GanSampleApiRequest, http: Request, owner: str = owner_dependency):
        """Sample GAN images: seeds × class (one row per class with "All classes"), a point of the seed plane,
        or imported latents. Errors name the field (422), as on /sdapi/v1."""
        fields = body.model_dump(exclude={"send_images", "task_id", "script_name", "script_args", "alwayson_scripts"})
        scripts = ScriptCall(body.script_name, list(body.script_args), dict(body.alwayson_scripts))
        job, result = await run_job(gan, GanRequest(**fields), body, owner, http, scripts)
        send = body.send_images
        images = [encode_png(i, i.info) for i in result.images] if send else []
        grid = encode_png(result.grid, result.grid.info) if send and result.grid is not None else None
        seeds = [s.seed for s in result.samples]
        info = {"task_id": job.id, "task_state": job.state, "model": result.model_title, "seeds": seeds,
                "infotexts": result.infotexts, "states": result.states}
        return {"images": images, "grid": grid, "captions": result.captions, "infotexts": result.infotexts,
                "parameters": body.model_dump(), "info": json.dumps(info, ensure_ascii=False)}

    @router.post(PREFIX + "/video", tags=["zoo: GAN"], response_model=GanVideoApiResponse)
    async def video(body: GanVideoApiRequest, http: Request, owner: str = owner_dependency):
        """Render an interpolation video between seeds (w lerp or z slerp), as GIF or MP4."""
        fields = body.model_dump(exclude={"task_id"})
        job, result = await run_job(gan_video, GanVideoRequest(**fields), body, owner, http)
        data = None
        if result.path is not None:
            data = base64.b64encode(result.path.read_bytes()).decode("ascii")
            if not result.request.save:  # a temporary file, made for this answer only
                result.path.unlink(missing_ok=True)
                result.path.parent.rmdir()
        info = {"task_id": job.id, "task_state": job.state, "model": result.model_title}
        return {"video": data, "media_type": VIDEO_TYPES.get(str(body.format).strip().lower().lstrip("."), ""),
                "frame_count": result.frame_count, "infotext": result.infotext, "parameters": body.model_dump(),
                "info": json.dumps(info, ensure_ascii=False)}

    @router.post(PREFIX + "/project", tags=["zoo: GAN"], response_model=GanProjectApiResponse)
    async def project(body: GanProjectApiRequest, http: Request, owner: str = owner_dependency):
        """Find the latent w (or w+) whose picture is nearest the image: Adam on pixels' squared error from w_avg,
        NVIDIA projector-style; VGG16 perceptual (LPIPS) loss when models/LPIPS holds the weights (never downloaded).
        Progress and interrupt by task id."""
        from modules.api.images import decode_image

        fields = body.model_dump(exclude={"task_id"})
        fields["image"] = decode_image(body.image, "image")
        job, result = await run_job(gan_project, GanProjectRequest(**fields), body, owner, http)
        image = None
        if result.latent is not None:  # rendered through the sampler, so the PNG carries the state to import
            render = GanRequest(model=body.model, latents=[result.latent], class_name=body.class_name,
                                save_images=False)
            rendered = await anyio.to_thread.run_sync(backend.run, gan, render, limiter=api._job_threads)
            image = encode_png(rendered.images[0], rendered.images[0].info)
        info = {"task_id": job.id, "task_state": job.state, "model": result.model_title}
        return {"image": image, "latent": result.latent, "psnr": result.psnr, "steps_done": result.steps_done,
                "interrupted": result.interrupted, "loss": result.loss, "info": json.dumps(info, ensure_ascii=False)}

    @router.post(PREFIX + "/directions", tags=["zoo: GAN"])
    def directions(body: GanDirectionsApiRequest):
        """Latent directions of a StyleGAN network (SeFa or GANSpace), as a direction file: unit vectors in w,
        largest effect first. Send them back as `directions` of /zoo/v1/gan/sample with a strength each."""
        from modules.capabilities.gan.run import class_indices
        from modules.errors import InvalidRequest

        if not 1 <= body.count <= 32:
            raise InvalidRequest("count", f"must be 1 to 32, got {body.count}")
        if body.layers is not None and len(body.layers) != 2:
            raise InvalidRequest("layers", "must be two numbers: from, to")
        _, caps = model_facts(backend.manager, body.model)
        (class_index,) = class_indices(body.class_name if body.class_name != "All classes" else None, caps)
        info, found = find_directions(backend.manager, body.model, body.method.strip().lower(), body.layers,
                                      body.count, class_index)
        return json.loads(found.to_json(info.model_name, info.sha256 or ""))

    @router.get(PREFIX + "/models", tags=["zoo: GAN"], response_model=list[GanModelInfo])
    def models():
        """The usable GANs of models/GAN (rescanned), the first being the default."""
        answer = []
        for title in backend.gan_titles():
            try:
                info, caps = model_facts(backend.manager, title)
            except UserError:  # removed or broken since the scan: not listed
                continue
            answer.append({"title": info.title, "model_name": info.model_name, "hash": info.shorthash,
                           "sha256": info.sha256, "classes": list(caps.class_names), "z_dim": caps.z_dim,
                           "image_size": caps.image_size, "layers": caps.num_ws})
        return answer


