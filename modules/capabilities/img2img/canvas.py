"""The pictures an img2img job works on, in pixels: the init image fitted to the size (A1111's resize modes),
outpainting pads, the mask (inverted, blurred, the pads added), masked content "fill", and the "only masked"
crop with its paste back. Pure PIL/numpy: no model here."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from modules.capabilities.img2img.request import CROP_AND_RESIZE, RESIZE_AND_FILL, Img2ImgRequest


def fit(image: Image.Image, width: int, height: int, mode: int) -> Image.Image:
    """`image` as a width × height RGB picture, A1111's way: stretched ("Just resize", also before a latent
    upscale), cropped to the aspect ratio first ("Crop and resize"), or scaled inside and the rest filled by
    stretching its edges ("Resize and fill")."""
    image = image.convert("RGB")
    if image.size == (width, height):
        return image.copy()
    if mode == CROP_AND_RESIZE:
        return ImageOps.fit(image, (width, height), Image.LANCZOS)
    if mode == RESIZE_AND_FILL:
        scale = min(width / image.width, height / image.height)
        inner = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
        return extend(inner, width, height, (width - inner.width) // 2, (height - inner.height) // 2)
    return image.resize((width, height), Image.LANCZOS)


def extend(image: Image.Image, width: int, height: int, left: int, top: int) -> Image.Image:
    """`image` placed at (left, top) of a width × height canvas, the rest filled with its stretched edges
    (a starting point the sampler can repaint: no hard black border)."""
    array = np.asarray(image)
    right, bottom = width - left - image.width, height - top - image.height
    padded = np.pad(array, ((top, bottom), (left, right), (0, 0)), mode="edge")
    return Image.fromarray(padded)


@dataclass
class Canvas:
    """One init image ready to sample: `image` (output size), `mask` (L, blurred, 255 = repaint) or None,
    `sharp_mask` (the unblurred one: what the job was asked to change)."""
    image: Image.Image
    mask: Image.Image | None
    sharp_mask: Image.Image | None


def prepare(request: Img2ImgRequest, init: Image.Image) -> Canvas:
    """The init image fitted and padded, and the mask it goes with (the request's, inverted if asked, fitted
    the same way, plus the padded area)."""
    fitted = fit(init, request.width, request.height, request.resize_mode)
    width, height = request.output_size
    image = extend(fitted, width, height, request.pad_left, request.pad_top)
    if not request.is_inpaint:
        return Canvas(image, None, None)
    mask = Image.new("L", (request.width, request.height), 0)
    if request.mask is not None:
        mask = fit(_as_mask(request.mask), request.width, request.height, request.resize_mode).convert("L")
        mask = mask.point(lambda v: 255 if v >= 128 else 0)
        if request.inpainting_mask_invert:
            mask = ImageOps.invert(mask)
    full = Image.new("L", (width, height), 255)  # the pads: new area, all repainted
    full.paste(mask, (request.pad_left, request.pad_top))
    return Canvas(image, blur(full, request.mask_blur), full)


def _as_mask(mask: Image.Image) -> Image.Image:
    """A mask picture as A1111 reads it: a transparent area is not painted on (black); otherwise its grey."""
    if mask.mode in ("RGBA", "LA") or "transparency" in mask.info:
        rgba = mask.convert("RGBA")
        grey = rgba.convert("L")
        return Image.composite(grey, Image.new("L", mask.size, 0), rgba.getchannel("A"))
    return mask.convert("RGB")


def blur(mask: Image.Image, radius: int) -> Image.Image:
    """A1111's mask blur: a Gaussian of sigma `radius` over a kernel of 2·round(2.5·radius)+1 pixels, so a
    pixel farther than round(2.5·radius) from the mask is never touched."""
    if radius <= 0:
        return mask.copy()
    reach = int(2.5 * radius + 0.5)
    x = np.arange(-reach, reach + 1, dtype=np.float64)
    kernel = np.exp(-(x ** 2) / (2 * radius ** 2))
    kernel /= kernel.sum()
    array = np.asarray(mask, dtype=np.float64)
    padded = np.pad(array, reach, mode="edge")
    rows = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), 1, padded)
    both = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="valid"), 0, rows)
    return Image.fromarray(np.clip(np.rint(both), 0, 255).astype(np.uint8))


def fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """Masked content "fill": the masked area painted with ever finer blurs of the colours around it
    (A1111's masking.fill), so the sampler starts from the surroundings' colours instead of what was there."""
    keep = ImageOps.invert(mask.point(lambda v: 255 if v > 0 else 0))
    known = Image.new("RGBA", image.size, (0, 0, 0, 0))
    known.paste(image.convert("RGBA"), mask=keep)
    known = known.convert("RGBa")  # premultiplied: blurring spreads colour, not the transparent black
    result = Image.new("RGBA", image.size)
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = known.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            result.alpha_composite(blurred)
    return result.convert("RGB")


def crop_region(mask: Image.Image, padding: int, width: int, height: int) -> tuple[int, int, int, int]:
    """"Only masked": the box around the mask's painted pixels, `padding` pixels wider on each side, grown to
    the picture's aspect ratio (as A1111's expand_crop_region) and kept inside it."""
    box = mask.point(lambda v: 255 if v > 0 else 0).getbbox() or (0, 0, width, height)
    x1, y1 = max(box[0] - padding, 0), max(box[1] - padding, 0)
    x2, y2 = min(box[2] + padding, width), min(box[3] + padding, height)
    aspect = width / height
    if (x2 - x1) / (y2 - y1) < aspect:  # too narrow: widen
        x1, x2 = _grow(x1, x2, math.ceil((y2 - y1) * aspect), width)
    else:
        y1, y2 = _grow(y1, y2, math.ceil((x2 - x1) / aspect), height)
    return x1, y1, x2, y2


def _grow(low: int, high: int, size: int, limit: int) -> tuple[int, int]:
    size = min(size, limit)
    extra = size - (high - low)
    low = max(low - extra // 2, 0)
    high = low + size
    if high > limit:
        low, high = limit - size, limit
    return low, high


def overlay(generated: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """The generated picture where the (blurred) mask is, the original elsewhere: pixels the mask does not
    reach are the original's, exactly."""
    return Image.composite(generated.convert("RGB"), original.convert("RGB"), mask)
