"""The img2img request: a txt2img request plus the picture(s) to start from, the denoising strength, how the
picture is fitted to the size, and the inpainting mask with A1111's options. Validated once, errors naming
the field (A1111's API names: denoising_strength, resize_mode, mask_blur, inpainting_fill ...)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from PIL import Image

from modules.capabilities.txt2img.request import MAX_SIDE, Txt2ImgRequest, _integer, _number, server_checked
from modules.errors import InvalidRequest

# A1111's resize modes, by index (its API sends the index; its UI the name).
RESIZE_MODES = ("Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)")
JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL, LATENT_UPSCALE = range(4)
# A1111's "Masked content", by index (inpainting_fill).
MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")
FILL, ORIGINAL, LATENT_NOISE, LATENT_NOTHING = range(4)
MAX_INIT_IMAGES = 8
MAX_MASK_BLUR = 64
MAX_PADDING = 256  # inpaint_full_res_padding: pixels of context around the masked area
PAD_SIDES = ("pad_left", "pad_right", "pad_top", "pad_bottom")


@dataclass
class Img2ImgRequest(Txt2ImgRequest):
    """`width` × `height`: the size the init image is fitted to (by `resize_mode`); outpainting pads add to it,
    so the result is (width + pad_left + pad_right) × (height + pad_top + pad_bottom).

    Batches take init_images in turn (image i of the job starts from init_images[i % len]), as A1111 does.
    `mask`: white = repaint, black = keep (A1111's convention); `inpainting_mask_invert` swaps them."""
    init_images: list[Image.Image] = field(default_factory=list)
    mask: Image.Image | None = None
    denoising_strength: float = 0.75
    resize_mode: int = JUST_RESIZE
    mask_blur: int = 4
    inpainting_fill: int = ORIGINAL
    inpaint_full_res: bool = False  # A1111's "Inpaint area: Only masked"
    inpaint_full_res_padding: int = 32
    inpainting_mask_invert: bool = False
    pad_left: int = 0
    pad_right: int = 0
    pad_top: int = 0
    pad_bottom: int = 0
    save_folder: str = "img2img-images"  # SaveSpec folder (hires fix saves its second pass as txt2img)

    @property
    def output_size(self) -> tuple[int, int]:
        return (self.width + self.pad_left + self.pad_right, self.height + self.pad_top + self.pad_bottom)

    @property
    def is_inpaint(self) -> bool:
        """A mask, or outpainting pads (their new area is masked)."""
        return self.mask is not None or any(getattr(self, side) for side in PAD_SIDES)

    def validated(self) -> "Img2ImgRequest":
        """A copy with normalised values, or InvalidRequest naming the first bad field."""
        base = Txt2ImgRequest(**{f.name: getattr(self, f.name) for f in fields(Txt2ImgRequest)}).validated()
        r = Img2ImgRequest(**{f.name: getattr(base, f.name) for f in fields(Txt2ImgRequest)},
                           **{f.name: getattr(self, f.name) for f in fields(self) if f.name not in _BASE_FIELDS})
        r.init_images = _images(r.init_images)
        if r.mask is not None and not isinstance(r.mask, Image.Image):
            raise InvalidRequest("mask", "must be an image")
        r.denoising_strength = _number(r.denoising_strength, "denoising_strength", 0.0, 1.0)
        r.resize_mode = _choice(r.resize_mode, "resize_mode", RESIZE_MODES)
        r.mask_blur = _integer(r.mask_blur, "mask_blur", 0, MAX_MASK_BLUR)
        r.inpainting_fill = _choice(r.inpainting_fill, "inpainting_fill", MASKED_CONTENT)
        r.inpaint_full_res = _flag(r.inpaint_full_res, "inpaint_full_res")
        r.inpaint_full_res_padding = _integer(r.inpaint_full_res_padding, "inpaint_full_res_padding", 0, MAX_PADDING)
        r.inpainting_mask_invert = _flag(r.inpainting_mask_invert, "inpainting_mask_invert")
        for side in PAD_SIDES:
            pad = _integer(getattr(r, side), side, 0, MAX_SIDE)
            if pad % 8:
                raise InvalidRequest(side, f"must be a multiple of 8, got {pad}")
            setattr(r, side, pad)
        width, height = r.output_size
        if width > MAX_SIDE or height > MAX_SIDE:
            raise InvalidRequest("pad_left" if width > MAX_SIDE else "pad_top",
                                 f"the padded picture would be {width}x{height}, over {MAX_SIDE} a side")
        if r.save_folder not in ("img2img-images", "txt2img-images"):
            raise InvalidRequest("save_folder", "must be img2img-images or txt2img-images")
        return r


_BASE_FIELDS = {f.name for f in fields(Txt2ImgRequest)}


def validate(request: Img2ImgRequest, context) -> Img2ImgRequest:
    """The request as a job runs it: its own values, then the server's --max-* limits on the picture it makes
    (padding included) and the checkpoint's text-encoder depth."""
    from modules.job_limits import check_image, check_txt2img

    if context.backend is not None:  # what the request leaves open (checkpoint, clip skip, saving): the settings
        request = context.backend.job_defaults(request, context.job.owner if context.job else None)
    request = request.validated()
    check_txt2img(request, context.limits)
    check_image(*request.output_size, context.limits, field="pad_left")
    return server_checked(request, context)


def _images(images) -> list[Image.Image]:
    if isinstance(images, Image.Image):
        images = [images]
    if not isinstance(images, (list, tuple)) or not images:
        raise InvalidRequest("init_images", "give the picture to start from")
    if len(images) > MAX_INIT_IMAGES:
        raise InvalidRequest("init_images", f"{len(images)} pictures, over the limit of {MAX_INIT_IMAGES}")
    if not all(isinstance(i, Image.Image) for i in images):
        raise InvalidRequest("init_images", "must be images")
    return list(images)


def _choice(value, field: str, names: tuple[str, ...]) -> int:
    """An index into `names`, or one of the names (any case), as A1111's API and UI send them."""
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        wanted = value.strip().lower()
        for index, name in enumerate(names):
            if name.lower() == wanted:
                return index
        raise InvalidRequest(field, f"must be one of {', '.join(repr(n) for n in names)} "
                                    f"(or 0 to {len(names) - 1}), got {value[:60]!r}")
    return _integer(value, field, 0, len(names) - 1)


def _flag(value, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # A1111 sends inpainting_mask_invert as 0 or 1
        return bool(value)
    raise InvalidRequest(field, "must be true or false (or 0 or 1)")
