"""Portable GAN state: each image's latent z with everything needed to render it again.

One image (the ``zoo_gan`` text chunk of a saved PNG, or a ``.json`` file)::

    {"format": "zoo-gan/1", "kind": "gan", "model": "shapes-gan", "model_hash": "<sha256>",
     "seed": 5, "position": null, "class": "circle", "class_index": 1, "truncation_psi": 0.7,
     "truncation_cutoff": null, "style_mix_seed": null, "style_mix_from": 1, "z_dim": 64, "z": [...]}

Several (the export file, and the ``zoo_gan_latents`` chunk of a saved grid)::

    {"format": "zoo-gan-latents/1", "items": [<one image>, ...]}

z is written at full float32 precision (JSON numbers round-trip exactly), so an imported state
renders the very same pixels. A projected image (projection.py) has no z: "z" is null and "w" holds its
[num_ws][w_dim] latent instead. ``seed`` is null for a latent no seed gives; ``position`` is the
seed-plane point it came from, if any.
"""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from modules.errors import InvalidRequest
from modules.image_limits import MAX_IMAGE_PIXELS, check_pixels
from modules.capabilities.gan.request import GanRequest

FORMAT = "zoo-gan/1"
EXPORT_FORMAT = "zoo-gan-latents/1"
MAX_FILE_BYTES = 50 * 2**20


def state_of(request: GanRequest, sample, caps, model_info) -> dict:
    return {
        "format": FORMAT, "kind": "gan", "model": model_info.model_name, "model_hash": model_info.sha256 or "",
        "seed": sample.seed, "position": None if sample.position is None else list(sample.position),
        "class": caps.class_names[sample.class_index] if caps.conditional else None,
        "class_index": sample.class_index, "truncation_psi": request.truncation_psi,
        "truncation_cutoff": request.truncation_cutoff,
        "style_mix_seed": sample.mix_seed if getattr(sample, "mix_seed", None) is not None else request.style_mix_seed,
        "style_mix_from": request.style_mix_from, "style_mix_to": request.style_mix_to, "noise_mode": request.noise_mode,
        "translate": list(request.translate), "rotate": request.rotate,
        "directions": [{**e, "layers": list(e["layers"])} for e in request.directions] if request.directions else None,
        "z_dim": caps.z_dim, "z": None if sample.z is None else [float(v) for v in sample.z.tolist()],
        **({"w": sample.w.tolist()} if getattr(sample, "w", None) is not None else {}),
    }


def export_text(states: list[dict]) -> str:
    return json.dumps({"format": EXPORT_FORMAT, "items": states})


def read_states(path: str | Path) -> list[dict]:
    """The states in an exported .json file or a PNG saved by the GAN tab (one image or a grid)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidRequest("file", f"{path.name}: file not found")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InvalidRequest("file", f"{path.name}: too big for a latent file")
    if path.suffix.lower() == ".json":
        text = path.read_text(encoding="utf-8", errors="replace")
    else:
        try:
            with Image.open(path) as image:
                check_pixels(image, "file")  # only the header is read, but a bomb is refused all the same
                chunks = dict(image.info)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidRequest("file", f"{path.name}: the image is over the limit of {MAX_IMAGE_PIXELS} "
                                         "pixels") from None
        except OSError:
            raise InvalidRequest("file", f"{path.name}: neither a .json latent file nor an image") from None
        text = chunks.get("zoo_gan_latents") or chunks.get("zoo_gan")
        if not isinstance(text, str):
            raise InvalidRequest("file", f"{path.name} carries no GAN latent: only PNGs saved by the GAN tab do")
    return parse_states(text, path.name)


def parse_states(text: str, name: str = "latents") -> list[dict]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidRequest("file", f"{name}: not valid JSON ({error})") from None
    if isinstance(data, dict) and data.get("format") == EXPORT_FORMAT and isinstance(data.get("items"), list):
        items = data["items"]
    elif isinstance(data, dict) and data.get("format") == FORMAT:
        items = [data]
    else:
        raise InvalidRequest("file", f"{name}: not a GAN latent file (format {FORMAT} or {EXPORT_FORMAT})")
    if not items or not all(isinstance(i, dict) and (isinstance(i.get("z"), list) or isinstance(i.get("w"), list))
                            for i in items):
        raise InvalidRequest("file", f"{name}: every item needs a z (a list of numbers) or a projected w")
    return items


def request_from_states(states: list[dict], model: str | None, save_images: bool = False) -> GanRequest:
    """A request that renders ``states`` again on ``model``; settings shared by the batch come from the first."""
    first = states[0]
    seeds = [s["seed"] for s in states if isinstance(s.get("seed"), int)]
    return GanRequest(
        model=model, seeds=seeds or [0], truncation_psi=first.get("truncation_psi", 1.0),
        class_name=first.get("class") or first.get("class_index"),
        truncation_cutoff=first.get("truncation_cutoff"), style_mix_seed=first.get("style_mix_seed"),
        style_mix_from=first.get("style_mix_from", 1), style_mix_to=first.get("style_mix_to"),
        noise_mode=first.get("noise_mode", "const"), directions=first.get("directions"),
        translate=first.get("translate"), rotate=first.get("rotate", 0.0),
        latents=[{"z": s.get("z"), "w": s.get("w") if s.get("z") is None else None, "seed": s.get("seed"), "position": s.get("position"),
                  "class": s.get("class") if s.get("class") is not None else s.get("class_index")} for s in states],
        save_images=save_images)
