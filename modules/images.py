"""Saving generated images the A1111 way: outputs/<mode>-images/YYYY-MM-DD/NNNNN-SEED.png
with the infotext in the PNG's `parameters` chunk, or .jpg/.webp (the samples_format option) with it in the
EXIF UserComment as A1111 writes it. Writes are atomic: a temp file, then a rename."""
from __future__ import annotations

import datetime
import os
import re
import threading
from pathlib import Path

from dataclasses import dataclass

from PIL import Image, PngImagePlugin

from modules.atomic_files import replacing

_numbering_lock = threading.Lock()
_NUMBERED = re.compile(r"^(\d{5})-")
_reserved: set[Path] = set()  # names handed out by reserve_path and not yet written


def output_folder(outdir: Path, mode: str, when: datetime.date | None = None) -> Path:
    when = when or datetime.date.today()
    return Path(outdir) / f"{mode}-images" / when.isoformat()


def png_info(parameters: str, extra: dict[str, str] | None = None) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", parameters)
    for key, value in (extra or {}).items():
        info.add_text(key, value)
    return info


@dataclass(frozen=True)
class ImageFormat:
    """How saved images are written: the samples_format (grid_format) and jpeg_quality options."""
    extension: str = "png"  # png, jpg, jpeg or webp
    quality: int = 80       # JPEG and WEBP

    @property
    def pil_format(self) -> str:
        return {"jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}.get(self.extension, "PNG")


PNG = ImageFormat()


def exif_with(parameters: str) -> Image.Exif:
    """The infotext as A1111 puts it into a JPEG or WEBP: EXIF UserComment, UTF-16 with the UNICODE prefix."""
    exif = Image.Exif()
    exif[0x8769] = {0x9286: b"UNICODE\x00" + parameters.encode("utf-16-be", "surrogatepass")}
    return exif


def save_image(image: Image.Image, folder: Path, seed: int, parameters: str,
               extra_text: dict[str, str] | None = None, image_format: ImageFormat = PNG) -> Path:
    """Save under the next free number. Nothing half-written is ever left under a final name."""
    path = reserve_path(folder, seed, image_format)
    write_image(image, path, parameters, extra_text, image_format)
    return path


def reserve_path(folder: Path, seed: int | str, image_format: ImageFormat = PNG) -> Path:
    """The next free numbered name in `folder`, held for one write_image (which may run later, on another
    thread: a job's images are written after it leaves the device) so that no other save takes it meanwhile."""
    folder.mkdir(parents=True, exist_ok=True)
    with _numbering_lock:
        number = _next_number(folder)
        path = folder / f"{number:05d}-{seed}.{image_format.extension}"
        _reserved.add(path)
    return path


def write_image(image: Image.Image, path: Path, parameters: str, extra_text: dict[str, str] | None = None,
                image_format: ImageFormat = PNG) -> None:
    """Encode and write atomically to a name from reserve_path, which is then free to be reserved no more."""
    try:
        with replacing(path, durable=False) as tmp:  # no fsync: see atomic_files.replacing
            if image_format.pil_format == "PNG":
                # compress_level 1: a fraction of the default level's time, files a little larger
                image.save(tmp, format="PNG", pnginfo=png_info(parameters, extra_text), compress_level=1)
            else:
                picture = image.convert("RGB") if image.mode not in ("RGB", "L") else image
                try:
                    picture.save(tmp, format=image_format.pil_format, quality=image_format.quality,
                                 exif=exif_with(parameters))
                except ValueError:  # an infotext over EXIF's 64 KB: the picture without it
                    picture.save(tmp, format=image_format.pil_format, quality=image_format.quality)
    finally:
        with _numbering_lock:
            _reserved.discard(path)


def _next_number(folder: Path) -> int:
    names = [*os.listdir(folder), *(p.name for p in _reserved if p.parent == folder)]
    numbers = [int(m.group(1)) for name in names if (m := _NUMBERED.match(name))]
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
