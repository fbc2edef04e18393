"""Portable latent state: a latent vector with the model it belongs to, as JSON, .npy or PNG metadata.

JSON (``*.latent.json``)::

    {"format": "zoo-latent/1", "kind": "beta_vae", "model": "shapes-beta-vae", "model_hash": "<sha256>",
     "latent_dim": 10, "latent": [0.12, -1.5, ...]}

.npy: the float32 vector alone (``numpy.save``); the model is whatever is selected on import.
PNG: the same JSON in a ``zoo_latent`` text chunk, next to an A1111-style ``parameters`` chunk, so
PNG Info shows it and dropping the PNG back into the explorer restores the sliders exactly.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modules.errors import InvalidRequest
from modules.image_limits import open_image
from modules.generation.infotext import format_infotext
from modules.capabilities.latent.request import parse_latent

FORMAT = "zoo-latent/1"
NO_LATENT = ("this PNG carries no latent: only PNGs saved here with Save PNG do. "
             "To get the latent of this picture, drop it into Encode instead")
PNG_KEY = "zoo_latent"


@dataclass
class LatentState:
    latent: np.ndarray          # float32 [latent_dim], σ units
    model: str = ""             # model name (file name without extension)
    model_hash: str = ""        # full sha256 of the model file, "" if unknown
    kind: str = "beta_vae"

    def to_dict(self) -> dict:
        return {"format": FORMAT, "kind": self.kind, "model": self.model, "model_hash": self.model_hash,
                "latent_dim": int(len(self.latent)), "latent": [round(float(v), 6) for v in self.latent]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def infotext(self) -> str:
        """A1111-style parameters text, so PNG Info and other tools show what the picture is."""
        params = {"Latent": "[" + ", ".join(f"{v:.4g}" for v in self.latent) + "]",
                  "Model hash": self.model_hash[:10] or None, "Model": self.model or None,
                  "Mode": "latent explorer"}
        return format_infotext("", "", params).lstrip("\n")


def from_dict(data, source: str = "file") -> LatentState:
    if not isinstance(data, dict):
        raise InvalidRequest(source, "is not a latent state (expected a JSON object with a \"latent\" list)")
    if "latent" not in data:
        raise InvalidRequest(source, "has no \"latent\" list")
    fmt = data.get("format", FORMAT)
    if not str(fmt).startswith("zoo-latent/"):
        raise InvalidRequest(source, f"format {fmt!r} is not a zoo latent state")
    latent = parse_latent(data["latent"], f"{source} latent")
    declared = data.get("latent_dim")
    if declared is not None and declared != len(latent):
        raise InvalidRequest(source, f"latent_dim says {declared} but the latent has {len(latent)} numbers")
    return LatentState(latent, str(data.get("model") or ""), str(data.get("model_hash") or ""),
                       str(data.get("kind") or "beta_vae"))


def from_json(text: str, source: str = "file") -> LatentState:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidRequest(source, f"is not valid JSON ({e.msg} at line {e.lineno}): import a file made by "
                                     f"Export latent, or a PNG saved here") from None
    if isinstance(data, list):
        return LatentState(parse_latent(data, source))
    return from_dict(data, source)


def to_npy_bytes(state: LatentState) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(state.latent, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def from_npy_bytes(data: bytes, source: str = "file") -> LatentState:
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InvalidRequest(source, f"is not a readable .npy array ({e})") from None
    return LatentState(parse_latent(np.asarray(array).reshape(-1) if array.ndim == 2 and 1 in array.shape else array,
                                    source))


def from_png(image: Image.Image, source: str = "image") -> LatentState | None:
    """The state a PNG carries, or None if it carries none."""
    text = image.info.get(PNG_KEY) if image.info else None
    if not text:
        return None
    try:
        return from_json(str(text), source)
    except InvalidRequest:
        raise InvalidRequest(source, "this PNG's stored latent is damaged: save the picture again with Save PNG, "
                                     "or drop it into Encode to encode its pixels") from None


def png_text(state: LatentState) -> dict[str, str]:
    return {"parameters": state.infotext(), PNG_KEY: state.to_json()}


def with_metadata(image: Image.Image, state: LatentState) -> Image.Image:
    """The image with the state in its text info; gradio and images.save_image write it into the PNG."""
    image.info.update(png_text(state))
    return image


def load_file(path: str | Path) -> LatentState:
    """A state from a .json, .npy or .png file (by content, not by name)."""
    path = Path(path)
    source = path.name
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidRequest("file", f"{source} cannot be read ({e.strerror})") from None
    if data.startswith(b"\x93NUMPY"):
        return from_npy_bytes(data, source)
    if data.startswith(b"\x89PNG"):
        with open_image(io.BytesIO(data), "file", source) as image:  # the header only: size checked, not decoded
            state = from_png(image, source)
        if state is None:
            raise InvalidRequest(source, NO_LATENT)
        return state
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(source, "is not a latent file: import a .json or .npy made by Export latent, or a "
                                     "PNG saved here; to encode a picture, drop it into Encode") from None
    return from_json(text, source)
