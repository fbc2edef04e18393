"""Upscalers: the built-in ones (None, Lanczos, Nearest), the latent modes hires fix uses, and model upscalers
(ESRGAN, Real-ESRGAN, SwinIR, DAT, ... anything spandrel detects) from models/ESRGAN, models/RealESRGAN and
models/SwinIR, loaded weights-only through the pipeline manager and run in overlapping tiles.

    upscaler_names(manager)                  -> ["None", "Lanczos", "Nearest", <model file stems>...]
    latent_modes()                           -> ["Latent", "Latent (antialiased)", ...]
    latent_mode("Latent (bicubic)")          -> ("bicubic", False): F.interpolate's mode and antialias
    upscale_latents(latents, "Latent", (128, 96))        -> latents at 128x96 latent pixels (hires fix)
    upscale(image, "4x-UltraSharp", 2.0, manager)         -> the image at twice its size
    upscale(image, "Lanczos", (1024, 768), manager)       -> the image at exactly 1024x768

A job that already holds the device (hires fix inside a txt2img job) passes `device_held=True`; any other
caller gets the device from the manager for the model's run (the device's line, in turn with other jobs).
"""
from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from modules.errors import InvalidRequest
from modules.upscalers.builtin import IMAGE_UPSCALERS, LANCZOS, LATENT_MODES, NEAREST, NONE, resize

__all__ = ["LANCZOS", "LATENT_MODES", "NEAREST", "NONE", "is_latent_mode", "latent_mode", "latent_modes",
           "target_size", "upscale", "upscale_latents", "upscaler_names"]

MAX_PASSES = 3  # a 4x model run at most three times (64x): A1111's limit too


def upscaler_names(manager) -> list[str]:
    """Every upscaler an image can be upscaled with, A1111's order: the built-in ones, then model files."""
    return [NONE, LANCZOS, NEAREST, *(f.name for f in manager.upscaler_files.scan())]


def latent_modes() -> list[str]:
    """Hires fix's latent upscale modes (not for images: they work on latents)."""
    return list(LATENT_MODES)


def is_latent_mode(name: str | None) -> bool:
    return name in LATENT_MODES


def latent_mode(name: str) -> tuple[str, bool]:
    """(interpolate mode, antialias) of a latent upscale mode; InvalidRequest("hr_upscaler") if unknown."""
    if name not in LATENT_MODES:
        raise InvalidRequest("hr_upscaler", f"unknown latent upscale mode {name!r}; one of {', '.join(LATENT_MODES)}")
    return LATENT_MODES[name]


def upscale_latents(latents, name: str, size: tuple[int, int]):
    """Latents (N, C, h, w) resized to `size` = (width, height) in latent pixels with a latent mode, as A1111's
    hires fix does before its second pass (antialias only where torch supports it: bilinear and bicubic)."""
    import torch

    mode, antialias = latent_mode(name)
    width, height = size
    return torch.nn.functional.interpolate(latents, size=(height, width), mode=mode, antialias=antialias)


def target_size(image: Image.Image, scale: float | tuple[int, int]) -> tuple[int, int]:
    """The size an upscale by `scale` (a factor, or an exact (width, height)) gives."""
    if isinstance(scale, (tuple, list)):
        return int(scale[0]), int(scale[1])
    return max(1, round(image.width * scale)), max(1, round(image.height * scale))


def upscale(image: Image.Image, upscaler_name: str | None, scale: float | tuple[int, int], manager,
            device_held: bool = False, check: Callable[[], None] = lambda: None,
            cancelled: Callable[[], bool] | None = None, owner: str | None = None, key: str | None = None
            ) -> Image.Image:
    """`image` upscaled to `target_size(image, scale)` with the named upscaler (None or "None": Lanczos, as
    A1111 resizes when no upscaler is chosen). A model upscaler runs as often as it takes to reach the size
    (at most three times), then Lanczos makes the size exact. `check()` runs between tiles (raise there to
    stop); `cancelled`/`owner`/`key` are for waiting in the device's line (see PipelineManager.use).
    ModelNotFound for an unknown name; BadModelFile naming the file for one that cannot be used."""
    size = target_size(image, scale)
    name = upscaler_name or NONE
    if name in (NONE, *IMAGE_UPSCALERS):
        return resize(image.convert("RGB"), size, name)
    if name in LATENT_MODES:
        raise InvalidRequest("upscaler", f"{name} upscales latents (hires fix only), not images")
    if device_held:
        with manager.upscaler_model(name) as model:
            return _with_model(model, image, size, check)
    from modules.models.refs import UPSCALER, ModelRef

    with manager.use(ModelRef(UPSCALER, name), cancelled=cancelled, owner=owner, key=key) as loaded:
        return _with_model(loaded.module, image, size, check)


def _with_model(model, image: Image.Image, size: tuple[int, int], check: Callable[[], None]) -> Image.Image:
    from modules.upscalers.run_model import run_model

    image = image.convert("RGB")
    if model.scale == 1:  # a restorer (denoise, dejpeg ...): once, then Lanczos to the size
        return resize(run_model(model, image, check), size, LANCZOS)
    for _ in range(MAX_PASSES):
        if image.width >= size[0] and image.height >= size[1]:
            break
        image = run_model(model, image, check)
    return resize(image, size, LANCZOS)

