"""The Extras capability (A1111's "Extras" tab and extra-single-image / extra-batch-images): upscale images
with the built-in or model upscalers, then restore faces (gfpgan_visibility), through the runner:

    backend.run(extras, ExtrasRequest(images=[image], upscaler_1="tiny-esrgan", upscaling_resize=4))
        -> ExtrasResult(images, infotexts, paths)

    request.py  ExtrasRequest (A1111's field names), validated once, errors naming the field
    run.py      the upscale of each image, its infotext, saving into outputs/extras-images
"""
from __future__ import annotations

from modules.capabilities.base import Capability, OutOfMemory, RunContext
from modules.capabilities.extras.request import ExtrasRequest
from modules.capabilities.extras.run import ExtrasResult, output_size, run_extras
from modules.errors import InvalidRequest
from modules.models.refs import FACE_RESTORER, UPSCALER, ModelRef

__all__ = ["ExtrasRequest", "ExtrasResult", "extras"]


def _validated(request: ExtrasRequest, context: RunContext) -> ExtrasRequest:
    from modules.upscalers import upscaler_names

    known = upscaler_names(context.backend.manager) if context.backend is not None else None
    request = request.validated(known)
    if request.gfpgan_visibility > 0 and context.backend is not None:
        request = context.backend.with_extras_face_restorer(request)
    limit = context.limits.max_grid_pixels  # an upscaled image may be far larger than a generated one
    for image in request.images:
        w, h = output_size(image, request)
        if w * h > limit:
            field = "upscaling_resize" if request.resize_mode == 0 else "upscaling_resize_w"
            raise InvalidRequest(field, f"the result would be {w}x{h} = {w * h} pixels, over this server's "
                                        f"limit of {limit} (--max-pixels x 32): upscale less")
    return request


def _model(request: ExtrasRequest) -> ModelRef:
    """The first model upscaler (the job holds the device for it, and runs the second one and the face
    restorer too); else the face restorer (the device held for it); None: the built-in resamplers only,
    which need no device."""
    names = request.model_upscalers
    if not names and request.gfpgan_visibility > 0:
        return ModelRef(FACE_RESTORER, "GFPGAN")
    return ModelRef(UPSCALER, names[0] if names else None)


def _run(request: ExtrasRequest, loaded, job, hooks) -> ExtrasResult:
    return run_extras(request, hooks.p.backend.manager, job, hooks)


def _out_of_memory(request: ExtrasRequest) -> OutOfMemory:
    return OutOfMemory("out of memory while upscaling: try a smaller scale or a smaller image")


extras = Capability(
    name="extras", tab="extras", validate=_validated, model=_model, run=_run,
    empty_result=lambda request: ExtrasResult(request), out_of_memory=_out_of_memory)
