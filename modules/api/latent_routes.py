"""/zoo/v1/latent: the Latent Explorer's β-VAE jobs over REST, with the same logins, owners and error
answers as /sdapi/v1 (a bad field is a 422 naming it). Each route builds the request the UI builds and
runs it through the backend's runner; images travel as base64 PNG, a decoded one carrying its latent in
the `zoo_latent` text chunk (so it can be sent back to /encode and restores exactly)."""
from __future__ import annotations

import base64
import io
from typing import Any

import anyio
from fastapi import Depends
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from modules.api.images import decode_image, encode_png
from modules.api.models import TASK_ID_PATTERN
from modules.capabilities import latent
from modules.capabilities.latent import models as latent_models
from modules.capabilities.latent.request import MAP_FACTORS
from modules.images import png_info

PREFIX = "/latent"
MODEL = Field(None, description="A β-VAE of models/Latent: title, name or hash; empty: the built-in (or first) one")
LATENT = Field(..., description="One number per latent dimension, in σ units of the prior (a JSON list, or text)",
               examples=[[0.5, -1.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    task_id: str | None = Field(None, pattern=TASK_ID_PATTERN,
                                description="Your id for this job, for /sdapi/v1/progress and /sdapi/v1/interrupt")


class DecodeBody(_Body):
    model: str | None = MODEL
    latent: list[float] | str = LATENT
    save: bool = Field(False, description="Also save the PNG to outputs/latent-images/<date>/")


class EncodeBody(_Body):
    model: str | None = MODEL
    image: str = Field(..., description="Base64 image (PNG, JPEG ...); a PNG saved by the explorer restores its "
                                        "stored latent exactly, with the model it was made with where that is here")


class RandomBody(_Body):
    model: str | None = MODEL
    seed: int = Field(-1, description="-1 picks one; the answer says which")
    scale: float = Field(1.0, description="Spread around the picked data-set picture, in its posterior σ")


class InterpolateBody(_Body):
    model: str | None = MODEL
    start: list[float] | str = LATENT
    end: list[float] | str = LATENT
    frames: int = Field(16, description="2 to 120, the ends included")
    method: str = Field("slerp", description="lerp or slerp")
    fps: int = Field(12, description="Frames per second of the GIF (and MP4) saved to outputs/latent-images/")


class TraverseBody(_Body):
    model: str | None = MODEL
    latent: list[float] | str = LATENT
    dims: list[int] = Field(default_factory=list, description="Dimensions to move, one row each; empty: all")
    k: float = Field(3.0, description="Values run over [−kσ, kσ]")
    steps: int = Field(7, description="Values per dimension, 2 to 15")


class MapBody(_Body):
    model: str | None = MODEL
    latent: list[float] | str = LATENT
    dim_x: int = 0
    dim_y: int = 1
    k: float = 3.0
    steps: int = Field(9, description="Grid size, 2 to 15")
    factor: str = Field("position_x", description="Shapes factor colouring the scatter: "
                                                  + ", ".join(MAP_FACTORS))
    samples: int = Field(500, description="Data-set images encoded for the scatter, 10 to 5000")


class LatentImage(BaseModel):
    image: str = Field(description="Base64 PNG, with the latent in its `zoo_latent` chunk")
    latent: list[float]
    labels: list[str] = Field(description="Each dimension's name, e.g. 'z7 · position_x'")
    seed: int | None = None


class EncodeAnswer(BaseModel):
    mu: list[float] = Field(description="Posterior mean: the latent the sliders take")
    sigma: list[float] = Field(description="Posterior σ per dimension; zeros when a stored latent was restored")
    reconstruction: str = Field(description="Base64 PNG of μ decoded")
    input_image: str = Field(description="Base64 PNG of what the encoder saw (RGB, the model's size)")
    model: str = Field(description="Title of the β-VAE used")
    restored: bool
    note: str = ""


class InterpolateAnswer(BaseModel):
    strip: str = Field(description="Base64 PNG of every frame in rows")
    frames: list[str] = Field(description="Base64 PNG per frame, at the model's size")
    latents: list[list[float]]


class TraverseAnswer(BaseModel):
    image: str = Field(description="Base64 PNG: a row per dimension, a column per value")


class MapAnswer(BaseModel):
    manifold: str = Field(description="Base64 PNG: the decoded grid over (dim_x, dim_y)")
    scatter: str = Field(description="Base64 PNG: the encoded data set on the same axes")


class ModelsAnswer(BaseModel):
    beta_vae: list[dict[str, Any]] = Field(description="β-VAEs of models/Latent: title, model_name, hash")
    sd_vae: list[str] = Field(description="Sources for the SD VAE explorer: 'checkpoint: …' and 'file: …'")


def _floats(values) -> list[float]:
    return [round(float(v), 6) for v in values]


def _png(image) -> str:
    """Base64 PNG keeping every text chunk the image carries (a decoded latent's `zoo_latent` among them)."""
    text = {k: v for k, v in (image.info or {}).items() if isinstance(k, str) and isinstance(v, str)}
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=png_info(text.pop("parameters", ""), text))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def add_routes(api) -> None:
    """The routes, on `api.zoo_router` (/zoo/v1)."""
    r, owner = api.zoo_router, Depends(api.current_owner)
    backend = api.backend

    async def run(capability, request, body: _Body, who: str):
        # A job of the caller's (its task id, if given, is theirs only), in a worker thread: decoding is
        # quick, but a first encoding of the data set takes a moment.
        job = api._new_job(capability.name, body.task_id, who)
        return await anyio.to_thread.run_sync(lambda: backend.runner.run(capability, request, job),
                                              limiter=api._job_threads)

    def decoded(result) -> dict:
        return {"image": _png(result.image), "latent": _floats(result.latent), "labels": result.labels,
                "seed": result.seed}

    @r.get(PREFIX + "/models", response_model=ModelsAnswer, tags=["latent"])
    def list_models():
        """The β-VAEs the explorer offers (and the SD VAE sources of its SD VAE mode)."""
        found = backend.zoo_registry.usable("beta_vae")
        return {"beta_vae": [{"title": m.title, "model_name": m.model_name, "hash": m.shorthash or None}
                             for m in found],
                "sd_vae": latent_models.sd_vae_choices(backend)}

    @r.post(PREFIX + "/decode", response_model=LatentImage, tags=["latent"])
    async def decode(body: DecodeBody, who: str = owner):
        """The picture of one latent."""
        return decoded(await run(latent.DECODE, latent.LatentDecodeRequest(body.model, body.latent, body.save), body, who))

    @r.post(PREFIX + "/random", response_model=LatentImage, tags=["latent"])
    async def random(body: RandomBody, who: str = owner):
        """A latent near the encoding of a random data-set picture (a clear picture, unlike a prior draw)."""
        return decoded(await run(latent.RANDOM, latent.RandomLatentRequest(body.seed, body.scale, body.model), body, who))

    @r.post(PREFIX + "/encode", response_model=EncodeAnswer, tags=["latent"])
    async def encode(body: EncodeBody, who: str = owner):
        """μ and σ of a picture's posterior."""
        image = await anyio.to_thread.run_sync(decode_image, body.image, "image", limiter=api._light_threads)
        result = await run(latent.ENCODE, latent.LatentEncodeRequest(body.model, image), body, who)
        return {"mu": _floats(result.mu), "sigma": _floats(result.sigma),
                "reconstruction": _png(result.reconstruction), "input_image": encode_png(result.input_image),
                "model": result.model, "restored": result.restored, "note": result.note}

    @r.post(PREFIX + "/interpolate", response_model=InterpolateAnswer, tags=["latent"])
    async def interpolate(body: InterpolateBody, who: str = owner):
        """Frames from start to end (also saved as a GIF, and an MP4 where ffmpeg is found)."""
        request = latent.LatentInterpolateRequest(body.model, body.start, body.end, body.frames, body.method, body.fps)
        result = await run(latent.INTERPOLATE, request, body, who)
        return {"strip": encode_png(result.strip), "frames": [encode_png(Image.fromarray(f)) for f in result.frames],
                "latents": [_floats(z) for z in result.latents]}

    @r.post(PREFIX + "/traverse", response_model=TraverseAnswer, tags=["latent"])
    async def traverse(body: TraverseBody, who: str = owner):
        """A row per dimension, moved over [−kσ, kσ] from the latent."""
        request = latent.LatentTraverseRequest(body.model, body.latent, body.dims, body.k, body.steps)
        return {"image": encode_png(await run(latent.TRAVERSE, request, body, who))}

    @r.post(PREFIX + "/map", response_model=MapAnswer, tags=["latent"])
    async def latent_map(body: MapBody, who: str = owner):
        """The decoded manifold over two dimensions, and the encoded data set on the same axes."""
        request = latent.LatentMapRequest(body.model, body.latent, body.dim_x, body.dim_y, body.k, body.steps,
                                          body.factor, body.samples)
        result = await run(latent.MAP, request, body, who)
        return {"manifold": encode_png(result.manifold), "scatter": encode_png(result.scatter)}

