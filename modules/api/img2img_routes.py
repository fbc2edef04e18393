"""POST /sdapi/v1/img2img: A1111's img2img (with masks: inpainting; with our pad_* fields: outpainting) over the
same runner as the tab, with the same owners, task ids, queue answers and 4xx errors as /sdapi/v1/txt2img.

The request carries every txt2img field plus A1111's img2img ones; a field A1111 would act on that this
server cannot honour is a 422 naming it (modules/api/unsupported.py), never silently ignored."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import anyio
from fastapi import Depends, Request
from pydantic import Field

from modules import owners
from modules.api.images import decode_image, encode_png
from modules.api.models import Txt2ImgApiRequest, Txt2ImgApiResponse
from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest
from modules.capabilities.txt2img.request import Txt2ImgRequest
from modules.capabilities.txt2img.hires import HIRES_FIELDS
from modules.errors import InvalidRequest
from modules.public_paths import scrub

if TYPE_CHECKING:
    from modules.api.routes import Api


class Img2ImgApiRequest(Txt2ImgApiRequest):
    init_images: list[str] = Field(default_factory=list, description="Base64 pictures to start from (a batch takes "
                                                                     "them in turn)")
    mask: str | None = Field(None, description="Base64 mask: white is repainted, black kept (inpainting)")
    denoising_strength: float = Field(0.75, description="0 keeps the picture, 1 ignores it; steps × strength "
                                                        "sampling steps are run")
    resize_mode: int | str = Field(0, description="0 just resize, 1 crop and resize, 2 resize and fill, "
                                                  "3 just resize (latent upscale)")
    mask_blur: int | None = Field(None, description="Mask blur in pixels (A1111: sets mask_blur_x and _y)")
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    inpainting_fill: int | str = Field(0, description="Masked content: 0 fill, 1 original, 2 latent noise, "
                                                      "3 latent nothing")
    inpaint_full_res: bool | int = Field(True, description="Inpaint area: true only masked, false whole picture")
    inpaint_full_res_padding: int = Field(0, description="Only masked: pixels of context around the mask")
    inpainting_mask_invert: int | bool = Field(0, description="1: repaint what the mask leaves black")
    include_init_images: bool = Field(False, description="Echo init_images and mask in `parameters`")
    pad_left: int = Field(0, description="Outpainting (beyond A1111): pixels added on the left, repainted")
    pad_right: int = Field(0, description="Outpainting: pixels added on the right")
    pad_top: int = Field(0, description="Outpainting: pixels added at the top")
    pad_bottom: int = Field(0, description="Outpainting: pixels added at the bottom")


def img2img_request(api: "Api", body: Img2ImgApiRequest, owner: str | None) -> Img2ImgRequest:
    """The job's request from A1111's fields (pictures decoded here: a bad one is a 422 naming its field)."""
    if body.enable_hr:
        raise InvalidRequest("enable_hr", "True is not supported: hires fix is for txt2img (img2img has "
                                          "denoising_strength and the upscalers of extra-single-image)")
    base = api._txt2img_request(body, owner)  # the txt2img fields, refusals and eta as for txt2img
    if not body.init_images:
        raise InvalidRequest("init_images", "give at least one base64 picture to start from")
    images = [decode_image(text, f"init_images[{i}]") for i, text in enumerate(body.init_images)]
    mask = decode_image(body.mask, "mask") if body.mask else None
    mask_blur = body.mask_blur
    if mask_blur is None:
        if body.mask_blur_x != body.mask_blur_y:
            field = "mask_blur_x" if body.mask_blur_x != 4 else "mask_blur_y"
            raise InvalidRequest(field, "a blur different across and down is not supported: give mask_blur")
        mask_blur = body.mask_blur_x
    common = {name: getattr(base, name) for name in Txt2ImgRequest.__dataclass_fields__
              if name not in HIRES_FIELDS}  # txt2img's hires fix: none of img2img's business
    return Img2ImgRequest(
        **common, init_images=images, mask=mask, denoising_strength=body.denoising_strength,
        resize_mode=body.resize_mode, mask_blur=mask_blur, inpainting_fill=body.inpainting_fill,
        inpaint_full_res=body.inpaint_full_res,
        inpaint_full_res_padding=body.inpaint_full_res_padding, inpainting_mask_invert=body.inpainting_mask_invert,
        pad_left=body.pad_left, pad_right=body.pad_right, pad_top=body.pad_top, pad_bottom=body.pad_bottom)


def add_routes(api: "Api") -> None:
    """POST /sdapi/v1/img2img on the API's /sdapi/v1 router."""
    from modules.api.routes import api_field_names, interrupt_on_disconnect, script_call

    backend = api.backend

    def answer(body: Img2ImgApiRequest, request: Img2ImgRequest, job) -> dict:
        with api_field_names():  # validated by the runner, before the job waits for the device
            result = backend.run(IMG2IMG, request, job, script_call(body))
        images = [encode_png(image, text) for image, text in zip(result.images, result.infotexts)]
        info = {**result.info(), "task_id": job.id, "task_state": job.state}
        parameters = body.model_dump()
        if not body.include_init_images:  # A1111 leaves the (large) pictures out of the echo
            parameters["init_images"], parameters["mask"] = None, None
        return {"images": images if body.send_images else [], "parameters": parameters,
                "info": json.dumps(info, ensure_ascii=False), "warnings": [scrub(w) for w in result.save_errors]}

    @api.router.post("/img2img", response_model=Txt2ImgApiResponse)
    async def img2img(body: Img2ImgApiRequest, http: Request, owner: str = Depends(api.current_owner)):
        """Generate from pictures: img2img, inpainting with `mask`, outpainting with pad_*. Errors, queue answers
        (503 busy, 429 too many of yours) and task ids as txt2img."""
        backend.device_line.refuse_if_full(owners.queue_user(owner))
        with api_field_names():
            request = await anyio.to_thread.run_sync(img2img_request, api, body, owner, limiter=api._job_threads)
        job = api._new_job(IMG2IMG.name, body.task_id or body.force_task_id, owner)
        async with interrupt_on_disconnect(http, job):
            return await anyio.to_thread.run_sync(answer, body, request, job, limiter=api._job_threads)
