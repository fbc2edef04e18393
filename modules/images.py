"""Saving generated images the A1111 way: outputs/<mode>-images/YYYY-MM-DD/NNNNN-SEED.png
with the infotext in the PNG's `parameters` chunk. Writes are atomic: a temp file, then a rename."""
from __future__ import annotations

import datetime
import os
import re
import threading
from pathlib import Path

from PIL import Image, PngImagePlugin

from modules.atomic_files import replacing

_numbering_lock = threading.Lock()
_NUMBERED = re.compile(r"^(\d{5})-")


def output_folder(outdir: Path, mode: str, when: datetime.date | None = None) -> Path:
    when = when or datetime.date.today()
    return Path(outdir) / f"{mode}-images" / when.isoformat()


def png_info(parameters: str, extra: dict[str, str] | None = None) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", parameters)
    for key, value in (extra or {}).items():
        info.add_text(key, value)
    return info


def save_image(image: Image.Image, folder: Path, seed: int, parameters: str,
               extra_text: dict[str, str] | None = None) -> Path:
    """Save under the next free number. Nothing half-written is ever left under a final name."""
    folder.mkdir(parents=True, exist_ok=True)
    with _numbering_lock:
        number = _next_number(folder)
        final = folder / f"{number:05d}-{seed}.png"
        with replacing(final) as tmp:
            # compress_level 1: a fraction of the default level's time, files a little larger
            image.save(tmp, format="PNG", pnginfo=png_info(parameters, extra_text), compress_level=1)
    return final


def _next_number(folder: Path) -> int:
    numbers = [int(m.group(1)) for name in os.listdir(folder) if (m := _NUMBERED.match(name))]
    return max(numbers, default=-1) + 1


def read_parameters(image: Image.Image) -> str | None:
    """The infotext of a PNG (or the EXIF UserComment A1111 writes into JPEG/WEBP), if any."""
    text = image.info.get("parameters")
    if text:
        return str(text)
    exif = image.getexif().get_ifd(0x8769).get(0x9286) if hasattr(image, "getexif") else None
    if isinstance(exif, bytes):
        for prefix in (b"UNICODE\x00", b"ASCII\x00\x00\x00"):
            if exif.startswith(prefix):
                body = exif[len(prefix):]
                return body.decode("utf-16-be" if prefix.startswith(b"UNICODE") else "ascii", "replace")
    return None
