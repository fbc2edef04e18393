"""The Extras request (A1111's names): upscale one or more images by a factor or to a size, with upscaler 1
and, blended over it, upscaler 2. Validated once; errors name the field."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from PIL import Image

from modules.capabilities.txt2img.request import _integer, _number
from modules.errors import InvalidRequest

RESIZE_BY, RESIZE_TO = 0, 1  # resize_mode: "Scale by" / "Scale to"
MAX_FACTOR = 8.0
MAX_SIDE = 16384
MAX_IMAGES = 64  # in one batch request


@dataclass
class ExtrasRequest:
    images: list[Image.Image] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # file names of a batch (saved outputs keep their stems)
    resize_mode: int = RESIZE_BY
    upscaling_resize: float = 2.0
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True        # "Scale to": fill the size and crop the overflow (else stretch)
    upscaler_1: str | None = "None"
    upscaler_2: str | None = "None"
    extras_upscaler_2_visibility: float = 0.0
    gfpgan_visibility: float = 0.0
    codeformer_visibility: float = 0.0
    save_images: bool = True

    def validated(self, known_upscalers: list[str] | None = None) -> "ExtrasRequest":
        r = replace(self, images=list(self.images), names=list(self.names))
        if not r.images:
            raise InvalidRequest("image", "no image given")
        if len(r.images) > MAX_IMAGES:
            raise InvalidRequest("imageList", f"at most {MAX_IMAGES} images at once, got {len(r.images)}")
        r.names = [str(n) for n in r.names[:len(r.images)]]
        r.resize_mode = _integer(r.resize_mode, "resize_mode", RESIZE_BY, RESIZE_TO)
        r.upscaling_resize = _number(r.upscaling_resize, "upscaling_resize", 1.0, MAX_FACTOR)
        r.upscaling_resize_w = _integer(r.upscaling_resize_w, "upscaling_resize_w", 1, MAX_SIDE)
        r.upscaling_resize_h = _integer(r.upscaling_resize_h, "upscaling_resize_h", 1, MAX_SIDE)
        if not isinstance(r.upscaling_crop, bool):
            raise InvalidRequest("upscaling_crop", "must be true or false")
        r.extras_upscaler_2_visibility = _number(r.extras_upscaler_2_visibility, "extras_upscaler_2_visibility", 0, 1)
        r.gfpgan_visibility = _number(r.gfpgan_visibility, "gfpgan_visibility", 0, 1)
        # CodeFormer's weights are under a non-commercial licence, outside spandrel's main registry: not here.
        if _number(r.codeformer_visibility, "codeformer_visibility", 0, 1) != 0:
            raise InvalidRequest("codeformer_visibility", "CodeFormer is not available on this server; leave it "
                                                          "at 0 and use gfpgan_visibility (GFPGAN)")
        r.codeformer_visibility = 0.0
        r.upscaler_1 = _upscaler(r.upscaler_1, "upscaler_1", known_upscalers)
        r.upscaler_2 = _upscaler(r.upscaler_2, "upscaler_2", known_upscalers)
        return r

    @property
    def model_upscalers(self) -> list[str]:
        """The upscalers of this request that are model files (in the order they run)."""
        from modules.upscalers.builtin import IMAGE_UPSCALERS, NONE

        names = [self.upscaler_1]
        if self.extras_upscaler_2_visibility > 0:
            names.append(self.upscaler_2)
        return [n for n in names if n not in (NONE, *IMAGE_UPSCALERS)]


def _upscaler(value, field: str, known: list[str] | None) -> str:
    if value is None:
        return "None"
    if not isinstance(value, str) or len(value) > 256:
        raise InvalidRequest(field, "must be the name of an upscaler")
    if known is not None and value not in known:
        raise InvalidRequest(field, f"unknown upscaler {value!r}; GET /sdapi/v1/upscalers lists them")
    return value
