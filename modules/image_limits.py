"""Uploaded images are checked for their pixel count from the header, before any pixel is decoded.

A PNG of one colour compresses about 1000:1: a 0.9 MB file can hold 13000×13000 pixels, 0.5 GB once
decoded. Every place that opens a user's image goes through `open_image`, which reads only the header
(Pillow decodes on `load()`), and `install()` makes Pillow itself refuse anything larger, so images
that Gradio opens for a component are bounded too."""
from __future__ import annotations

import warnings

from PIL import Image, UnidentifiedImageError

from modules.errors import InvalidRequest

MAX_IMAGE_PIXELS = 32 * 2**20
"""33.5 megapixels (8192×4096): eight times the largest image a job makes (2048²), room for big grids;
about 100 MB once decoded to RGB."""

UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
              Image.DecompressionBombError, Image.DecompressionBombWarning)
"""What Pillow raises on a file that is not an image it can read (or, after install(), one too large)."""
UNREADABLE_HINT = "cannot be read as an image: choose a PNG, JPEG or WEBP picture"


def install() -> None:
    """Pillow refuses images over MAX_IMAGE_PIXELS everywhere in this process (it only warns by default,
    and refuses at twice its own limit)."""
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def check_pixels(image: Image.Image, field: str) -> Image.Image:
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise InvalidRequest(field, f"the image is {width}×{height} = {width * height} pixels, over the limit of "
                                    f"{MAX_IMAGE_PIXELS} pixels")
    return image


def open_image(source, field: str, name: str | None = None) -> Image.Image:
    """Image.open(source) with its size checked; nothing decoded yet. `name` (a file name) goes into messages."""
    try:
        image = Image.open(source)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidRequest(field, f"{name + ': ' if name else ''}the image is over the limit of "
                                    f"{MAX_IMAGE_PIXELS} pixels") from None
    except UNREADABLE:
        raise InvalidRequest(field, f"{name + ' ' if name else ''}{UNREADABLE_HINT}") from None
    return check_pixels(image, field)
