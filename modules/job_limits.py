"""How much work one job may ask of the device: --max-pixels, --max-batch and --max-steps.

The defaults depend on the device. On a CPU a 2048×2048, batch 8 job took RSS from 0.8 to 8.5 GB and a
single step ran for minutes; a GPU does that in seconds. Each refusal names the flag that would allow it.
The request types keep their own absolute ranges (2048 px a side, batch 8, 150 steps): the flags can only
narrow them."""
from __future__ import annotations

from dataclasses import dataclass

from modules.errors import InvalidRequest


@dataclass(frozen=True)
class JobLimits:
    max_pixels: int  # width × height of one image
    max_batch: int   # images made at once (batch size)
    max_steps: int   # sampling steps

    @property
    def max_grid_images(self) -> int:
        """An X/Y/Z plot or GAN grid: images in one job (cells × batch count × batch size)."""
        return GRID_FACTOR * self.max_batch

    @property
    def max_grid_pixels(self) -> int:
        """The pixels of one grid picture (all its cells side by side)."""
        return GRID_FACTOR * self.max_pixels


GRID_FACTOR = 32
# On a CPU: 1024² a picture (SD 1.x's 512² with room; about 1.5 GB of activations at batch 4), 4 at once.
CPU_LIMITS = JobLimits(max_pixels=1024 * 1024, max_batch=4, max_steps=150)
# On a GPU (or Apple MPS): what the request types allow anyway.
GPU_LIMITS = JobLimits(max_pixels=2048 * 2048, max_batch=8, max_steps=150)
ABSOLUTE = GPU_LIMITS  # the flags cannot go above these (the request types refuse more)


def default_limits(device_type: str) -> JobLimits:
    return CPU_LIMITS if device_type == "cpu" else GPU_LIMITS


def limits_for(device_type: str, max_pixels: int | None = None, max_batch: int | None = None,
               max_steps: int | None = None) -> JobLimits:
    """The flags' values where given, the device's defaults for the rest."""
    default = default_limits(device_type)
    return JobLimits(max_pixels=max_pixels or default.max_pixels, max_batch=max_batch or default.max_batch,
                     max_steps=max_steps or default.max_steps)


def check_image(width: int, height: int, limits: JobLimits, field: str = "width") -> None:
    pixels = width * height
    if pixels > limits.max_pixels:
        raise InvalidRequest(field, f"width × height {pixels} is over {limits.max_pixels} pixels (--max-pixels)")


def check_txt2img(request, limits: JobLimits) -> None:
    """A validated Txt2ImgRequest against the limits; InvalidRequest naming the field and the flag."""
    check_image(request.width, request.height, limits)
    if request.batch_size > limits.max_batch:
        raise InvalidRequest("batch_size", f"batch size {request.batch_size} is over {limits.max_batch} (--max-batch)")
    if request.steps > limits.max_steps:
        raise InvalidRequest("steps", f"{request.steps} steps is over {limits.max_steps} (--max-steps)")


def check_grid(images: int, cell_pixels: int, cells: int, limits: JobLimits, field: str) -> None:
    """A grid of `cells` pictures of `cell_pixels` each, `images` made in all."""
    if images > limits.max_grid_images:
        raise InvalidRequest(field, f"the grid makes {images} images, over {limits.max_grid_images} "
                                    f"({GRID_FACTOR} × --max-batch)")
    if cells * cell_pixels > limits.max_grid_pixels:
        raise InvalidRequest(field, f"the grid picture would have {cells * cell_pixels} pixels, over "
                                    f"{limits.max_grid_pixels} ({GRID_FACTOR} × --max-pixels)")
