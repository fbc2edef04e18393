"""Pictures and files the Latent Explorer hands out: labelled grids, strips, GIF and MP4 animations.

MP4 is written by the ffmpeg binary that the imageio-ffmpeg wheel bundles (no download, works
offline); where that binary is missing, only the GIF is written and ``mp4_available()`` says so."""
from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from modules.atomic_files import replacing

_numbering_lock = threading.Lock()
_NUMBERED = re.compile(r"^(\d{5})-")


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of uint8 [H, W, C] (keeps pixels crisp)."""
    if factor <= 1:
        return image
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def display_scale(image_size: int, target: int = 256) -> int:
    return max(1, target // max(1, image_size))


@functools.lru_cache(maxsize=4)
def _font(size: int):
    """DejaVu Sans (matplotlib ships it; it has σ), else Pillow's own font."""
    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=True), size)
    except (ImportError, OSError, ValueError):
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow without FreeType
            return ImageFont.load_default()


def grid(images: np.ndarray, columns: int, gap: int = 2, background: int = 255,
         row_labels: Sequence[str] | None = None, column_labels: Sequence[str] | None = None,
         title: str = "") -> Image.Image:
    """uint8 [N, H, W, 3] images in rows of ``columns``, with optional labels left of rows and above
    columns, and a title line on top."""
    n, h, w, _ = images.shape
    rows = (n + columns - 1) // columns
    font_size = max(10, min(16, h // 5))
    left = (max((_font(font_size).getlength(t) for t in row_labels), default=0) + 10) if row_labels else 0
    heading = font_size + 10 if title else 0
    top = heading + (font_size + 8 if column_labels else 0)
    width = int(left) + columns * (w + gap) + gap
    if title:
        width = max(width, int(_font(font_size).getlength(title)) + 8)
    canvas = np.full((top + rows * (h + gap) + gap, width, 3), background, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        y, x = top + gap + r * (h + gap), int(left) + gap + c * (w + gap)
        canvas[y:y + h, x:x + w] = image
    picture = Image.fromarray(canvas)
    if row_labels or column_labels:
        draw = ImageDraw.Draw(picture)
        font = _font(font_size)
        for r, text in enumerate(row_labels or []):
            draw.text((4, top + gap + r * (h + gap) + h // 2), text, fill=(30, 30, 30), font=font, anchor="lm")
        for c, text in enumerate(column_labels or []):
            draw.text((int(left) + gap + c * (w + gap) + w // 2, (heading + top) // 2 + 1), text, fill=(30, 30, 30),
                      font=font, anchor="mm")
    if title:
        ImageDraw.Draw(picture).text((4, heading // 2 + 1), title, fill=(30, 30, 30), font=_font(font_size), anchor="lm")
    return picture


def next_path(folder: Path, stem: str, suffix: str) -> Path:
    """NNNNN-stem.suffix under the next number the folder has (shared with images.save_image's numbering)."""
    folder.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for name in os.listdir(folder) if (m := _NUMBERED.match(name))]
    return folder / f"{max(numbers, default=-1) + 1:05d}-{stem}{suffix}"


def write_atomic(folder: Path, stem: str, suffix: str, write) -> Path:
    """Call ``write(tmp_path)`` and rename the result under the next free number; nothing half-written stays."""
    folder.mkdir(parents=True, exist_ok=True)
    with _numbering_lock:
        final = next_path(folder, stem, suffix)
        with replacing(final) as tmp:
            write(tmp)
    return final


def write_gif(frames: np.ndarray, path: Path, fps: int, bounce: bool = False) -> None:
    """Looping GIF from uint8 [N, H, W, 3]; ``bounce`` plays forward then back."""
    sequence = list(frames) + (list(frames[-2:0:-1]) if bounce else [])
    images = [Image.fromarray(f) for f in sequence]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                   loop=0, optimize=False, disposal=1)


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str | None:
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None
    return exe if exe and Path(exe).exists() else None


def mp4_available() -> bool:
    return ffmpeg_exe() is not None


def write_mp4(frames: np.ndarray, path: Path, fps: int) -> None:
    """H.264 MP4 (yuv420p, plays everywhere) from uint8 [N, H, W, 3]; sides must be even."""
    import imageio_ffmpeg

    n, h, w, _ = frames.shape
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_in="rgb24",
                                         pix_fmt_out="yuv420p", macro_block_size=1, quality=8,
                                         output_params=["-movflags", "+faststart"], ffmpeg_log_level="error")
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def even_upscale(frames: np.ndarray, target: int = 256) -> np.ndarray:
    """Frames upscaled for an animation, with even sides (H.264 needs them)."""
    factor = display_scale(frames.shape[1], target)
    big = np.stack([upscale(f, factor) for f in frames])
    h, w = big.shape[1] // 2 * 2, big.shape[2] // 2 * 2
    return big[:, :h, :w]
