"""Requests of the Latent Explorer's SD VAE mode (a Stable Diffusion VAE's C×h×w latent), each validated
once, with errors naming the field. The shared value checks and image reading are in request.py."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from modules.capabilities.latent.request import MAX_K_SIGMA, integer, number, read_image
from modules.errors import InvalidRequest
from modules.image_limits import MAX_IMAGE_PIXELS, open_image


@dataclass
class SdVaeEdit:
    """Edits applied to an SD VAE latent [C, h, w] (scaled by the VAE's scaling factor, so ≈ unit σ)."""
    offsets: list[float] = field(default_factory=list)     # per channel, σ units
    scales: list[float] = field(default_factory=list)      # per channel, multiplier
    directions: list[float] = field(default_factory=list)  # per principal direction, σ units of that direction

    def validated(self, channels: int, n_directions: int) -> "SdVaeEdit":
        offsets = _padded(self.offsets, channels, 0.0, "offsets", -MAX_K_SIGMA, MAX_K_SIGMA)
        scales = _padded(self.scales, channels, 1.0, "scales", 0.0, 4.0)
        directions = _padded(self.directions, n_directions, 0.0, "directions", -MAX_K_SIGMA, MAX_K_SIGMA)
        return replace(self, offsets=offsets, scales=scales, directions=directions)


def _padded(values, n: int, default: float, field_name: str, low: float, high: float) -> list[float]:
    values = list(values or [])
    if len(values) > n:
        if any(float(v) != default for v in values[n:] if v is not None):
            raise InvalidRequest(field_name, f"has {len(values)} values, but there are only {n}")
        values = values[:n]
    values = [default if v is None else v for v in values] + [default] * (n - len(values))
    return [number(v, f"{field_name}[{i}]", low, high) for i, v in enumerate(values)]


@dataclass
class SdVaeEncodeRequest:
    vae: str | None = None   # "checkpoint: <title>" or "file: <name in models/VAE>"
    image: object = None
    size: int = 256          # the image is centre-cropped to a square of this side

    def validated(self) -> "SdVaeEncodeRequest":
        size = integer(self.size, "size", 64, 1024)
        if size % 64:
            raise InvalidRequest("size", f"must be a multiple of 64, got {size}")
        return SdVaeEncodeRequest(_vae_source(self.vae), read_image(self.image), size)


@dataclass
class SdVaeDirectionsRequest:
    vae: str | None = None
    images: object = None     # list of image files; empty: Shapes data-set images
    count: int = 16           # data-set images to encode when no files are given
    directions: int = 4
    size: int = 256           # the side they are encoded at: the current latent's image side

    def validated(self, max_directions: int) -> "SdVaeDirectionsRequest":
        files = [f for f in (self.images or []) if f]
        _check_direction_files(files)
        images = [read_image(f, f"images[{i}]") for i, f in enumerate(files)]
        count = len(images) if images else integer(self.count, "count", 3, 256)
        if images and len(images) < 3:
            raise InvalidRequest("images", "give at least 3 images (or none, to use Shapes images)")
        directions = integer(self.directions, "directions", 1, max_directions)
        if directions > count - 1:
            raise InvalidRequest("directions", f"{count} images give at most {count - 1} principal directions")
        return SdVaeDirectionsRequest(_vae_source(self.vae), images, count, directions,
                                      integer(self.size, "size", 8, 1024))


@dataclass
class SdVaeDecodeRequest:
    """Decode the encoded latent ``current`` (sd_vae.SdVaeLatent) with ``edit`` applied, along ``directions``
    (sd_vae.Directions) where there are some."""
    current: object = None
    edit: SdVaeEdit = field(default_factory=SdVaeEdit)
    directions: object = None

    def validated(self) -> "SdVaeDecodeRequest":
        if self.current is None or getattr(self.current, "latent", None) is None:
            raise InvalidRequest("latent", "encode an image first")
        n_directions = len(self.directions.stds) if self.directions is not None else 0
        return SdVaeDecodeRequest(self.current, self.edit.validated(len(self.current.latent), n_directions),
                                  self.directions)

    @property
    def vae(self) -> str:
        return self.current.vae


MAX_DIRECTION_IMAGES = 256


def _check_direction_files(files: list) -> None:
    """Counted, and their pixels summed from the headers, before any is decoded: all of them are held at once."""
    if len(files) > MAX_DIRECTION_IMAGES:
        raise InvalidRequest("images", f"{len(files)} images is over the limit of {MAX_DIRECTION_IMAGES}")
    total = 0
    for index, file in enumerate(files):
        if isinstance(file, (str, Path)) and Path(file).is_file():
            with open_image(file, f"images[{index}]", Path(file).name) as image:
                total += image.width * image.height
    if total > MAX_IMAGE_PIXELS:
        raise InvalidRequest("images", f"the images have {total} pixels together, over the limit of "
                                       f"{MAX_IMAGE_PIXELS}: give fewer or smaller ones")


def _vae_source(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("vae", "pick a VAE: a checkpoint's or a file in models/VAE")
    return value.strip()
