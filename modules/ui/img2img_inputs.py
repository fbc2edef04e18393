"""The img2img tab's pictures as a request wants them: the picture to start from and the mask (white =
repaint), from whichever of the tab's three inputs is in use. Plain PIL: no Gradio here."""
from __future__ import annotations

from PIL import Image, ImageChops

from modules.errors import UserError

IMG2IMG, INPAINT, INPAINT_UPLOAD = "img2img", "inpaint", "inpaint upload"


def drawn_mask(layers: list, size: tuple[int, int]) -> Image.Image | None:
    """White where any brush stroke is (the layers' alpha), black elsewhere; None when nothing is drawn."""
    mask = Image.new("L", size, 0)
    for layer in layers or []:
        if layer is None:
            continue
        alpha = layer.getchannel("A") if "A" in layer.getbands() else layer.convert("L")
        if alpha.size != size:
            alpha = alpha.resize(size, Image.Resampling.NEAREST)
        mask = ImageChops.lighter(mask, alpha.point(lambda v: 255 if v >= 128 else 0))  # stroke edges: half
    return mask if mask.getbbox() else None


def pictures(mode: str, image, editor, inpaint_image, inpaint_mask) -> tuple[Image.Image, Image.Image | None]:
    """(init image, mask or None) of the sub-tab in use; UserError naming the input that is missing."""
    if mode == INPAINT:
        background = (editor or {}).get("background")
        if background is None:
            raise UserError("Inpaint: upload or paste a picture, then draw on it what to repaint")
        mask = drawn_mask((editor or {}).get("layers") or [], background.size)
        if mask is None:
            raise UserError("Inpaint: draw on the picture what to repaint (the brush), or use the img2img tab")
        return background.convert("RGB"), mask
    if mode == INPAINT_UPLOAD:
        if inpaint_image is None:
            raise UserError("Inpaint upload: upload the picture to repaint")
        if inpaint_mask is None:
            raise UserError("Inpaint upload: upload a mask (white: repaint, black: keep)")
        return inpaint_image.convert("RGB"), inpaint_mask
    if image is None:
        raise UserError("img2img: upload or paste a picture to start from")
    return image.convert("RGB"), None


def fitting_size(image: Image.Image | None, limit: int = 2048) -> tuple[int, int] | None:
    """The picture's own size, in multiples of 8 and at most `limit` a side (what Width and Height become)."""
    if image is None:
        return None
    width, height = image.size
    shrink = min(1.0, limit / max(width, height))
    return max(8, int(width * shrink) // 8 * 8), max(8, int(height * shrink) // 8 * 8)
