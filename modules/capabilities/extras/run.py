"""Extras: each image upscaled with upscaler 1 and, blended over it at its visibility, upscaler 2 (A1111's
postprocessing "upscale" step), saved into outputs/extras-images with its parameters as infotext."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from modules.capabilities.base import SaveSpec
from modules.capabilities.face_restore_step import restored_for_extras
from modules.capabilities.extras.request import RESIZE_TO, ExtrasRequest
from modules.upscalers import upscale

FOLDER = "extras-images"


@dataclass
class ExtrasResult:
    request: ExtrasRequest
    images: list[Image.Image] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)

    @property
    def html_info(self) -> str:
        """What A1111's API answers as html_info: the parameters of the (first) image."""
        return self.infotexts[0] if self.infotexts else ""


def output_size(image: Image.Image, request: ExtrasRequest) -> tuple[int, int]:
    """The size the upscalers aim for: by the factor, or the smallest scale that covers the asked size
    when cropping to it (else exactly the asked size)."""
    if request.resize_mode != RESIZE_TO:
        factor = request.upscaling_resize
        return max(1, round(image.width * factor)), max(1, round(image.height * factor))
    w, h = request.upscaling_resize_w, request.upscaling_resize_h
    if not request.upscaling_crop:
        return w, h
    scale = max(w / image.width, h / image.height)
    return max(w, round(image.width * scale)), max(h, round(image.height * scale))


def _cropped(image: Image.Image, request: ExtrasRequest) -> Image.Image:
    if request.resize_mode != RESIZE_TO or not request.upscaling_crop:
        return image
    w, h = request.upscaling_resize_w, request.upscaling_resize_h
    left, top = (image.width - w) // 2, (image.height - h) // 2
    return image.crop((left, top, left + w, top + h))


def infotext(request: ExtrasRequest, size: tuple[int, int]) -> str:
    """A1111's postprocessing parameters: "Postprocess upscale by: 2, Postprocess upscaler: ..."."""
    parts = {}
    if request.resize_mode == RESIZE_TO:
        parts["Postprocess upscale to"] = f"{request.upscaling_resize_w}x{request.upscaling_resize_h}"
        parts["Postprocess crop to fit"] = str(request.upscaling_crop)
    else:
        parts["Postprocess upscale by"] = f"{request.upscaling_resize:g}"
    parts["Postprocess upscaler"] = request.upscaler_1
    if request.extras_upscaler_2_visibility > 0:
        parts["Postprocess upscaler 2"] = request.upscaler_2
        parts["Postprocess upscaler 2 visibility"] = f"{request.extras_upscaler_2_visibility:g}"
    if request.gfpgan_visibility > 0:
        parts["GFPGAN visibility"] = f"{round(request.gfpgan_visibility, 3):g}"
    parts["Size"] = f"{size[0]}x{size[1]}"
    return ", ".join(f"{k}: {v}" for k, v in parts.items())


def upscale_one(image: Image.Image, request: ExtrasRequest, manager, check) -> Image.Image:
    """One image through upscaler 1 (and 2), at the request's size; the job holds the device already."""
    image = image.convert("RGB")
    size = output_size(image, request)
    first = upscale(image, request.upscaler_1, size, manager, device_held=True, check=check)
    if request.extras_upscaler_2_visibility > 0:
        second = upscale(image, request.upscaler_2, size, manager, device_held=True, check=check)
        first = Image.blend(first, second.resize(first.size, Image.Resampling.LANCZOS) if second.size != first.size
                            else second, request.extras_upscaler_2_visibility)
    return restored_for_extras(_cropped(first, request), request.gfpgan_visibility, manager, check)


def run_extras(request: ExtrasRequest, manager, job, hooks=None) -> ExtrasResult:
    result = ExtrasResult(request)
    job.start(1, len(request.images))
    for index, image in enumerate(request.images):
        job.check()
        # As A1111: the source's generation parameters stay the picture's `parameters` (PNG Info still
        # restores them); what Extras did goes into a `postprocessing` text chunk beside them.
        source = image.info.get("parameters")
        out = upscale_one(image, request, manager, job.check)
        text = infotext(request, out.size)
        parameters = source if isinstance(source, str) and source else text
        if hooks is not None:
            stem = Path(request.names[index]).stem[:80] if index < len(request.names) and request.names[index] \
                else "extras"
            save_to = SaveSpec(FOLDER, stem, {"postprocessing": text}) if request.save_images else None
            out, path = hooks.image_ready(out, parameters, None, index, save_to)
            if path is not None:
                result.paths.append(path)
        out.info["parameters"] = parameters
        out.info["postprocessing"] = text
        result.images.append(out)
        result.infotexts.append(text)
        job.report_step(index + 1)
    return result

