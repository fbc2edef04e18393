"""Requests of the Latent Explorer, each validated once, with errors naming the field.

A latent vector is given in σ units of the model's prior N(0, I), so for a β-VAE the slider
value of a dimension *is* z. Its length must be the model's ``latent_dim``, which is known only
once the model is loaded: ``validated()`` checks everything else before the job starts, and the run
checks the fit with ``validated(model.latent_dim)``.

Images (encode) may come as a file path, a PIL image or a uint8 array. RGBA, LA, P, L and 1-bit
images are converted to RGB (transparent parts composited on white); any size from 8 px up to
``MAX_IMAGE_SIDE`` is centre-cropped to a square and resized to the model's image size.
16-bit, 32-bit and float images and files that are not images are refused.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modules.errors import InvalidRequest
from modules.image_limits import UNREADABLE, open_image
from modules.user_values import shown

MAX_LATENT_DIM = 4096
MAX_ABS_LATENT = 50.0        # |z| beyond this decodes to saturated noise; almost surely a unit mistake
MAX_FRAMES = 120
MAX_GRID_STEPS = 15
MAX_K_SIGMA = 6.0
MAX_IMAGE_SIDE = 8192
MIN_IMAGE_SIDE = 8
MAX_SEED = 2**32 - 1
MAX_DATASET_INDEX = 499      # the encoded evaluation set holds 500 images (data_map.DEFAULT_SAMPLES)
METHODS = ("lerp", "slerp")
MAP_FACTORS = ("kind", "colour", "size", "position", "position_x", "position_y", "background")
CONVERTIBLE_MODES = {"RGB", "RGBA", "L", "LA", "P", "PA", "1", "CMYK", "YCbCr", "RGBX", "La"}


# ---------------------------------------------------------------- value checks

def parse_latent(value, field_name: str, latent_dim: int | None = None) -> np.ndarray:
    """A float32 vector from a list, an array, or text (JSON list or numbers split by commas/spaces)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidRequest(field_name, "is empty: give a list of numbers, one per latent dimension")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith(("[", "{")) else [float(t) for t in text.replace(",", " ").split()]
        except ValueError:
            raise InvalidRequest(field_name, "must be a JSON list of numbers, e.g. [0.5, -1.2, 0]") from None
        if isinstance(value, dict):  # an exported state pasted whole
            value = value.get("latent")
    if isinstance(value, (bool, int, float)) or value is None:
        raise InvalidRequest(field_name, "must be a list of numbers, not a single value")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int too large for a float
        raise InvalidRequest(field_name, "must be a list of numbers") from None
    if array.ndim != 1:
        raise InvalidRequest(field_name, f"must be a flat list of numbers, got shape {list(array.shape)}")
    if latent_dim is not None and len(array) != latent_dim:
        raise InvalidRequest(field_name, f"has {len(array)} numbers, but this model's latent_dim is {latent_dim}")
    if not 1 <= len(array) <= MAX_LATENT_DIM:
        raise InvalidRequest(field_name, f"must have 1 to {MAX_LATENT_DIM} numbers, got {len(array)}")
    bad = np.flatnonzero(~np.isfinite(array))
    if len(bad):
        raise InvalidRequest(field_name, f"dimension {int(bad[0])} is {array[bad[0]]}: every value must be a finite number")
    big = np.flatnonzero(np.abs(array) > MAX_ABS_LATENT)
    if len(big):
        raise InvalidRequest(field_name, f"dimension {int(big[0])} is {array[big[0]]:g}: values are in σ units "
                                         f"and must lie within ±{MAX_ABS_LATENT:g}")
    return array.astype(np.float32)


def integer(value, field_name: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise InvalidRequest(field_name, "must be a whole number")
    if isinstance(value, str):
        value = value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int too large for a float
        raise InvalidRequest(field_name, f"must be a whole number, got {shown(value)}") from None
    if not math.isfinite(number) or number != int(number):
        raise InvalidRequest(field_name, f"must be a whole number, got {shown(value)}")
    if not low <= number <= high:
        raise InvalidRequest(field_name, f"must be between {low} and {high}, got {int(number)}")
    return int(number)


def number(value, field_name: str, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise InvalidRequest(field_name, "must be a number")
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int too large for a float
        raise InvalidRequest(field_name, f"must be a number, got {shown(value)}") from None
    if not math.isfinite(result):
        raise InvalidRequest(field_name, f"must be a finite number, got {shown(value)}")
    if not low <= result <= high:
        raise InvalidRequest(field_name, f"must be between {low:g} and {high:g}, got {result:g}")
    return result


def choice(value, field_name: str, options: Sequence[str]) -> str:
    text = str(value or "").strip().lower()
    if text not in options:
        raise InvalidRequest(field_name, f"must be one of {', '.join(options)}, got {shown(value)}")
    return text


def model_name(value) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidRequest("model", "must be a model title or name")
    return (value or "").strip() or None


def dims_list(value, field_name: str, latent_dim: int | None) -> list[int]:
    """Dimension numbers from a list or text ("0, 3, 5"); empty means all dimensions (once latent_dim is known)."""
    if value is None or (isinstance(value, str) and not value.strip()) or (not isinstance(value, str) and len(value) == 0):
        return list(range(latent_dim)) if latent_dim is not None else []
    if latent_dim is None:
        latent_dim = MAX_LATENT_DIM
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    dims = []
    for item in items:
        if isinstance(item, str) and item.strip().lower().startswith("z"):
            item = item.strip()[1:].split()[0].split("·")[0]
        d = integer(item, field_name, 0, latent_dim - 1)
        if d not in dims:
            dims.append(d)
    return dims


# ---------------------------------------------------------------- images

def read_image(value, field_name: str = "image") -> Image.Image:
    """An opened, fully loaded PIL image (not yet converted); unreadable input is an InvalidRequest."""
    if value is None:
        raise InvalidRequest(field_name, "no image given: upload, draw or pick one")
    if isinstance(value, dict):  # gradio's ImageEditor/Sketchpad value
        value = value.get("composite") or value.get("background") or value.get("path")
        if value is None:
            raise InvalidRequest(field_name, "the drawing is empty")
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, np.ndarray):
        return _array_image(value, field_name)
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise InvalidRequest(field_name, f"file {path.name!r} not found")
        try:
            with open_image(path, field_name, path.name) as image:  # pixel count checked before decoding
                image.load()
                return image.copy() if not image.info else _with_info(image)
        except UNREADABLE as e:
            raise InvalidRequest(field_name, f"{path.name} cannot be read as an image ({type(e).__name__})") from None
    raise InvalidRequest(field_name, f"must be an image file, not {type(value).__name__}")


def _with_info(image: Image.Image) -> Image.Image:
    copy = image.copy()
    copy.info = dict(image.info)
    return copy


def _array_image(array: np.ndarray, field_name: str) -> Image.Image:
    if array.dtype != np.uint8:
        raise InvalidRequest(field_name, f"pixel type {array.dtype} is not supported; give 8-bit (uint8) pixels")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4)):
        return Image.fromarray(array.squeeze(2) if array.ndim == 3 and array.shape[2] == 1 else array)
    raise InvalidRequest(field_name, f"array of shape {list(array.shape)} is not an image (H×W, H×W×3 or H×W×4)")


def to_rgb_square(image: Image.Image, size: int | tuple[int, int], field_name: str = "image",
                  crop: bool = True) -> np.ndarray:
    """uint8 [H, W, 3]: mode converted to RGB, centre-cropped to the target's aspect, resized."""
    if image.mode not in CONVERTIBLE_MODES:
        raise InvalidRequest(field_name, f"image mode {image.mode} (16/32-bit or float pixels) is not supported; "
                                         "save it as an 8-bit RGB or greyscale PNG")
    w, h = image.size
    if min(w, h) < MIN_IMAGE_SIDE or max(w, h) > MAX_IMAGE_SIDE:
        raise InvalidRequest(field_name, f"image is {w}×{h}; each side must be {MIN_IMAGE_SIDE} to {MAX_IMAGE_SIDE} px")
    if image.mode in ("RGBA", "LA", "PA", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("RGB")
    target_w, target_h = (size, size) if isinstance(size, int) else size
    if crop:
        scale = max(target_w / w, target_h / h)
        crop_w, crop_h = round(target_w / scale), round(target_h / scale)
        left, top = (w - crop_w) // 2, (h - crop_h) // 2
        image = image.crop((left, top, left + crop_w, top + crop_h))
    if image.size != (target_w, target_h):
        image = image.resize((target_w, target_h), Image.Resampling.LANCZOS if image.width > target_w else Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8).copy()


# ---------------------------------------------------------------- requests

@dataclass
class LatentDecodeRequest:
    model: str | None = None
    latent: object = ()   # list of floats, array or text; σ units
    save: bool = False    # also save the PNG to outputs/latent-images/<date>/

    def validated(self, latent_dim: int | None = None) -> "LatentDecodeRequest":
        return LatentDecodeRequest(model_name(self.model), parse_latent(self.latent, "latent", latent_dim),
                                   bool(self.save))


@dataclass
class LatentEncodeRequest:
    model: str | None = None
    image: object = None  # path, PIL image or uint8 array

    note: str = ""        # set by validation when the image's stored latent names another model

    def validated(self, latent_dim: int | None = None) -> "LatentEncodeRequest":
        """Reads the image (so a bad file fails here); conversion to the model's size happens in encode."""
        return LatentEncodeRequest(model_name(self.model), read_image(self.image), self.note)


@dataclass
class LatentInterpolateRequest:
    model: str | None = None
    start: object = ()
    end: object = ()
    frames: int = 16
    method: str = "slerp"
    fps: int = 12

    def validated(self, latent_dim: int | None = None) -> "LatentInterpolateRequest":
        return LatentInterpolateRequest(
            model_name(self.model), parse_latent(self.start, "start", latent_dim), parse_latent(self.end, "end", latent_dim),
            integer(self.frames, "frames", 2, MAX_FRAMES), choice(self.method, "method", METHODS),
            integer(self.fps, "fps", 1, 60))


@dataclass
class LatentTraverseRequest:
    model: str | None = None
    latent: object = ()
    dims: object = ()          # empty: every dimension
    k: float = 3.0             # values run over [-kσ, kσ]
    steps: int = 7

    def validated(self, latent_dim: int | None = None) -> "LatentTraverseRequest":
        return LatentTraverseRequest(
            model_name(self.model), parse_latent(self.latent, "latent", latent_dim),
            dims_list(self.dims, "dims", latent_dim), number(self.k, "k", 0.1, MAX_K_SIGMA),
            integer(self.steps, "steps", 2, MAX_GRID_STEPS))


@dataclass
class LatentMapRequest:
    model: str | None = None
    latent: object = ()
    dim_x: int = 0
    dim_y: int = 1
    k: float = 3.0
    steps: int = 9
    factor: str = "position_x"
    samples: int = 500

    def validated(self, latent_dim: int | None = None) -> "LatentMapRequest":
        highest = (latent_dim or MAX_LATENT_DIM) - 1
        r = LatentMapRequest(
            model_name(self.model), parse_latent(self.latent, "latent", latent_dim),
            integer(_dim_number(self.dim_x), "dim_x", 0, highest),
            integer(_dim_number(self.dim_y), "dim_y", 0, highest),
            number(self.k, "k", 0.1, MAX_K_SIGMA), integer(self.steps, "steps", 2, MAX_GRID_STEPS),
            choice(self.factor, "factor", MAP_FACTORS), integer(self.samples, "samples", 10, 5000))
        if r.dim_x == r.dim_y and (latent_dim or 2) > 1:
            raise InvalidRequest("dim_y", "must differ from dim_x")
        return r


@dataclass
class RandomLatentRequest:
    seed: int = -1   # -1: a random seed, reported back
    scale: float = 1.0   # the posterior σ of the picked data-set image is multiplied by this
    model: str | None = None

    def validated(self, latent_dim: int | None = None) -> "RandomLatentRequest":
        seed = integer(self.seed if self.seed is not None else -1, "seed", -1, MAX_SEED)
        if seed == -1:
            seed = int(np.random.default_rng().integers(0, MAX_SEED))
        return RandomLatentRequest(seed, number(self.scale, "scale", 0.0, 3.0), model_name(self.model))


@dataclass
class DataSetLatentRequest:
    """The encoding of one image of the evaluation data set: where the explorer opens."""
    model: str | None = None
    index: int = 0

    def validated(self, latent_dim: int | None = None) -> "DataSetLatentRequest":
        return DataSetLatentRequest(model_name(self.model), integer(self.index, "index", 0, MAX_DATASET_INDEX))


def _dim_number(value):
    """Dropdowns show "z3 · position_x"; the API may send 3 or "3"."""
    if isinstance(value, str) and value.strip().lower().startswith("z"):
        return value.strip()[1:].split()[0]
    return value
