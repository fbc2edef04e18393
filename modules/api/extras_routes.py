"""A1111's Extras and upscaler routes, through the same runner as the Extras tab (modules/capabilities/extras):

    POST /sdapi/v1/extra-single-image    one base64 image upscaled -> {"html_info", "image"}
    POST /sdapi/v1/extra-batch-images    imageList [{data, name}] -> {"html_info", "images"}
    GET  /sdapi/v1/upscalers             None, Lanczos, Nearest and the files of models/ESRGAN, RealESRGAN, SwinIR
    GET  /sdapi/v1/latent-upscale-modes  hires fix's latent modes

Request and response shapes are A1111's. As in A1111, the API does not save the images (the tab does)."""
from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Literal

import anyio
from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from modules.api.errors import ApiError
from modules.api.images import decode_image
from modules.capabilities.extras import ExtrasRequest, extras
from modules.images import png_info
from modules.public_paths import shown

if TYPE_CHECKING:
    from modules.api.routes import Api


class ExtrasBaseRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    resize_mode: Literal[0, 1] = Field(0, description="0: scale by upscaling_resize; 1: scale to upscaling_resize_w/h")
    show_extras_results: bool = Field(True, description="Return the images")
    gfpgan_visibility: float = Field(0, description="Restore faces with GFPGAN (models/GFPGAN), 0 to 1: how much "
                                                    "of the restored picture shows")
    codeformer_visibility: float = Field(0, description="CodeFormer is not available here: only 0")
    codeformer_weight: float = Field(0, ge=0, le=1)
    upscaling_resize: float = Field(2, description="Scale factor, 1 to 8")
    upscaling_resize_w: int = Field(512, description="Target width (resize_mode 1)")
    upscaling_resize_h: int = Field(512, description="Target height (resize_mode 1)")
    upscaling_crop: bool = Field(True, description="resize_mode 1: fill the size and crop the rest (else stretch)")
    upscaler_1: str = Field("None", description="GET /sdapi/v1/upscalers lists them")
    upscaler_2: str = Field("None", description="Blended over upscaler 1 at extras_upscaler_2_visibility")
    extras_upscaler_2_visibility: float = Field(0, description="0 to 1")
    upscale_first: bool = Field(False, description="Upscale before face restoration (no effect here)")


class ExtrasSingleImageRequest(ExtrasBaseRequest):
    image: str = Field("", description="Base64 image (or a data: URL)")


class FileData(BaseModel):
    data: str = Field(description="Base64 image")
    name: str = Field("", description="File name")


class ExtrasBatchImagesRequest(ExtrasBaseRequest):
    imageList: list[FileData] = Field(description="The images, each with a file name")  # noqa: N815 - A1111's


class ExtrasSingleImageResponse(BaseModel):
    html_info: str
    image: str | None = None


class ExtrasBatchImagesResponse(BaseModel):
    html_info: str
    images: list[str]


class UpscalerItem(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    name: str
    model_name: str | None = None
    model_path: str | None = None
    model_url: str | None = None
    scale: float | None = None


class LatentUpscalerModeItem(BaseModel):
    name: str


def encode_result(image) -> str:
    """Base64 PNG with the source's `parameters` and Extras' own `postprocessing` text chunks."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=png_info(image.info.get("parameters", ""),
                                                      {"postprocessing": image.info.get("postprocessing", "")}))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _request(body: ExtrasBaseRequest, images, names) -> ExtrasRequest:
    return ExtrasRequest(images=images, names=names, resize_mode=body.resize_mode,
                         upscaling_resize=body.upscaling_resize, upscaling_resize_w=body.upscaling_resize_w,
                         upscaling_resize_h=body.upscaling_resize_h, upscaling_crop=body.upscaling_crop,
                         upscaler_1=body.upscaler_1, upscaler_2=body.upscaler_2,
                         extras_upscaler_2_visibility=body.extras_upscaler_2_visibility,
                         gfpgan_visibility=body.gfpgan_visibility, codeformer_visibility=body.codeformer_visibility,
                         save_images=False)


def add_routes(api: "Api") -> None:
    """Add the Extras and upscaler routes to the API's /sdapi/v1 router."""
    from modules.api.routes import interrupt_on_disconnect
    from modules.upscalers import latent_modes
    from modules.upscalers.builtin import IMAGE_UPSCALERS, NONE

    backend = api.backend
    router = api.router
    owner_dependency = Depends(api.current_owner)

    async def run_job(request: ExtrasRequest, owner: str, http: Request):
        checked = await anyio.to_thread.run_sync(backend.runner.validate, extras, request, None,
                                                 limiter=api._job_threads)
        job = api._new_job(extras.name, None, owner)
        async with interrupt_on_disconnect(http, job):
            return await anyio.to_thread.run_sync(backend.runner.run, extras, checked, job, limiter=api._job_threads)

    @router.post("/extra-single-image", response_model=ExtrasSingleImageResponse)
    async def extra_single_image(body: ExtrasSingleImageRequest, http: Request, owner: str = owner_dependency):
        """Upscale one image with upscaler 1 (and upscaler 2 blended over it), by a factor or to a size."""
        image = await anyio.to_thread.run_sync(decode_image, body.image, "image", limiter=api._job_threads)
        result = await run_job(_request(body, [image], ["image.png"]), owner, http)
        send = body.show_extras_results and result.images
        return {"html_info": result.html_info, "image": encode_result(result.images[0]) if send else None}

    @router.post("/extra-batch-images", response_model=ExtrasBatchImagesResponse)
    async def extra_batch_images(body: ExtrasBatchImagesRequest, http: Request, owner: str = owner_dependency):
        """Upscale several images the same way."""
        if not body.imageList:
            raise ApiError(422, "imageList", "no images: send at least one {data, name}")

        def decode():
            return [decode_image(f.data, f"imageList.{i}.data") for i, f in enumerate(body.imageList)]
        images = await anyio.to_thread.run_sync(decode, limiter=api._job_threads)
        result = await run_job(_request(body, images, [f.name for f in body.imageList]), owner, http)
        images = [encode_result(i) for i in result.images] if body.show_extras_results else []
        return {"html_info": result.html_info, "images": images}

    @router.get("/upscalers", response_model=list[UpscalerItem])
    def upscalers():
        """The upscalers Extras and hires fix can use: the built-in ones, then model files (rescanned)."""
        answer = [{"name": name, "model_name": None, "model_path": None, "model_url": None,
                   "scale": 4 if name != NONE else None} for name in (NONE, *IMAGE_UPSCALERS)]
        for file in backend.manager.upscaler_files.scan():
            answer.append({"name": file.name, "model_name": file.path.parent.name, "model_path": shown(file.path),
                           "model_url": None, "scale": None})
        return answer

    @router.get("/latent-upscale-modes", response_model=list[LatentUpscalerModeItem])
    def latent_upscale_modes():
        """Hires fix's latent upscale modes (upscaling the latents before the second pass)."""
        return [{"name": name} for name in latent_modes()]
