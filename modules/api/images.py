"""Images as the API carries them: base64 PNG text, with the infotext kept in the `parameters` chunk."""
from __future__ import annotations

import base64
import binascii
import io

from PIL import Image

from modules.api.errors import ApiError
from modules.image_limits import UNREADABLE, open_image
from modules.images import png_info


def encode_png(image: Image.Image, parameters: str | None = None) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=png_info(parameters) if parameters else None)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_image(text: str, field: str = "image") -> Image.Image:
    """Base64 (optionally a data: URL) -> a loaded PIL image; a 422 naming `field` otherwise."""
    text = (text or "").strip()
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if not text:
        raise ApiError(422, field, "is empty: send a base64-encoded image")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, field, "is not valid base64") from None
    image = open_image(io.BytesIO(data), field)  # the pixel count is checked before anything is decoded
    try:
        image.load()  # text chunks after the pixel data are only read here
    except UNREADABLE as e:
        raise ApiError(422, field, f"cannot be read as an image ({type(e).__name__})") from None
    return image
