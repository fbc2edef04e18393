"""SD upscale (A1111's img2img script, its title and script_args order: info, overlap, upscaler, scale factor).

The init picture is upscaled with the chosen upscaler, cut into overlapping tiles of the request's width ×
height, each tile redrawn by img2img (the request's prompt, strength, sampler ...; tile k gets seed + k),
and the tiles blended back. Progress counts the tiles' batches. The picture made is bounded like a grid
(--max-pixels × the grid factor), and everything is checked before the upscale starts."""
from __future__ import annotations

import datetime
import math
from dataclasses import replace
from pathlib import Path

from PIL import Image

from modules import images as image_files
from modules.capabilities.img2img import IMG2IMG, Img2ImgResult
from modules.capabilities.img2img.request import MAX_INIT_IMAGES, PAD_SIDES
from modules.capabilities.scripting import JobPart
from modules.capabilities.txt2img.run import resolve_seed
from modules.errors import InvalidRequest
from modules.extensions import Script
from modules.jobs import Interrupted
from modules.upscalers import LANCZOS, NEAREST, NONE, target_size, upscale, upscaler_names

from ..tiles import Tile, blend, positions, split

TITLE = "SD upscale"
FIELD = "script_args"  # A1111's API field: every refusal of the script's own values names it
MAX_OVERLAP = 256
MIN_SCALE, MAX_SCALE = 1.0, 4.0


def _overlap(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise InvalidRequest(FIELD, f"tile overlap (the 2nd value) must be a whole number, got {value!r}")
    if not 0 <= value <= MAX_OVERLAP:
        raise InvalidRequest(FIELD, f"tile overlap (the 2nd value) must be 0 to {MAX_OVERLAP}, got {value}")
    return int(value)


def _scale(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not MIN_SCALE <= value <= MAX_SCALE:
        raise InvalidRequest(FIELD, f"scale factor (the 4th value) must be a number from {MIN_SCALE:g} to "
                                    f"{MAX_SCALE:g}, got {value!r}")
    return float(value)


def _upscaler(value, names: list[str]) -> str:
    """An index into GET /sdapi/v1/upscalers' list (A1111's upscaler_index) or a name, any case."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < len(names):
            return names[value]
        raise InvalidRequest(FIELD, f"upscaler (the 3rd value) must be 0 to {len(names) - 1}, got {value}")
    if isinstance(value, str):
        for name in names:
            if name.lower() == value.strip().lower():
                return name
    raise InvalidRequest(FIELD, f"upscaler (the 3rd value) must be one of {', '.join(names)} (or its index), "
                                f"got {str(value)[:60]!r}")


def _flat(image: Image.Image) -> Image.Image:
    """RGB; a transparent picture over white (A1111's img2img background)."""
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    return image.convert("RGB")


def _padded(image: Image.Image, width: int, height: int) -> Image.Image:
    """At least width × height: a picture smaller than one tile gets its edge pixels repeated (cut off later)."""
    if image.width >= width and image.height >= height:
        return image
    import numpy as np

    array = np.asarray(image)
    pad = ((0, max(0, height - image.height)), (0, max(0, width - image.width)), (0, 0))
    return Image.fromarray(np.pad(array, pad, mode="edge"))


class SDUpscale(Script):
    def title(self) -> str:
        return TITLE

    def show(self, tab: str):
        return tab == "img2img"

    def ui(self, tab: str) -> list:
        import gradio as gr

        return [gr.HTML("<p>Upscales the picture by the scale factor, then redraws it in tiles of the width × "
                        "height above.</p>"),
                gr.Slider(0, MAX_OVERLAP, value=64, step=8, label="Tile overlap", elem_id="sd_upscale_overlap"),
                gr.Dropdown([NONE, LANCZOS, NEAREST], value=LANCZOS, label="Upscaler", allow_custom_value=True,
                            info="or a model upscaler's name (see Extras)", elem_id="sd_upscale_upscaler"),
                gr.Slider(MIN_SCALE, MAX_SCALE, value=2.0, step=0.05, label="Scale Factor",
                          elem_id="sd_upscale_scale_factor")]

    def run(self, p, _info="", overlap=64, upscaler=LANCZOS, scale_factor=2.0):
        overlap, scale_factor = _overlap(overlap), _scale(scale_factor)
        name = _upscaler(upscaler, upscaler_names(p.backend.manager))
        request = replace(p.request, seed=resolve_seed(p.request.seed))
        if request.mask is not None or any(getattr(request, side) for side in PAD_SIDES):
            raise InvalidRequest("mask", "SD upscale redraws the whole picture: send it without a mask or pads")
        tile_w, tile_h = request.width, request.height
        if overlap >= min(tile_w, tile_h):
            raise InvalidRequest(FIELD, f"tile overlap {overlap} must be smaller than a tile ({tile_w}x{tile_h})")
        init = _flat(request.init_images[0])
        width, height = target_size(init, scale_factor)
        per_picture = (len(_starts(width, tile_w, overlap)) * len(_starts(height, tile_h, overlap)))
        per_batch = max(1, min(request.batch_size, MAX_INIT_IMAGES))
        batches = math.ceil(per_picture / per_batch) * request.batch_count
        self._check_size(p, width * height, per_picture * request.batch_count)
        tile_request = replace(request, width=tile_w, height=tile_h, batch_count=1, batch_size=per_batch,
                               resize_mode=0, save_images=False, init_images=[init])
        p.backend.runner.validate(IMG2IMG, tile_request)  # its steps, size ... before the upscale runs
        p.extra_generation_params.update({"SD upscale overlap": overlap, "SD upscale upscaler": name})

        job = p.job

        def stop_if_interrupted():  # between the upscaler's tiles (Skip has nothing to skip there)
            if job.interrupt_requested:
                raise Interrupted()

        bigger = upscale(init, name, (width, height), p.backend.manager, check=stop_if_interrupted,
                         cancelled=lambda: job.interrupt_requested, owner=job.owner, key=job.id)
        tiles = split(_padded(bigger, tile_w, tile_h), tile_w, tile_h, overlap)
        result = Img2ImgResult(replace(request, width=width, height=height))
        done = 0
        for n in range(request.batch_count):
            start = request.seed + n * len(tiles)
            redrawn, infotext = [], None
            for first in range(0, len(tiles), per_batch):
                if job.interrupt_requested:
                    return result
                chunk = tiles[first:first + per_batch]
                made = p.generate(replace(tile_request, seed=start + first, batch_size=len(chunk),
                                          init_images=[t.image for t in chunk]), job=JobPart(job, done, batches))
                done += 1
                if len(made.images) - made.index_of_first_image < len(chunk):
                    return result  # stopped inside the batch: the picture is incomplete
                infotext = infotext or made.infotexts[made.index_of_first_image]
                result.save_errors += made.save_errors
                redrawn += [Tile(t.x, t.y, image) for t, image in zip(chunk, made.images[made.index_of_first_image:])]
                result.checkpoint_title = made.checkpoint_title
            picture = blend(redrawn, (max(width, tile_w), max(height, tile_h))).crop((0, 0, width, height))
            picture.info["parameters"] = infotext
            result.images.append(picture)
            result.infotexts.append(infotext)
            result.seeds.append(start)
            if request.save_images and p.outdir is not None:
                folder = Path(p.outdir) / "img2img-images" / datetime.date.today().isoformat()
                path = image_files.save_image(picture, folder, start, infotext)
                result.paths.append(path)
                p.image_saved(picture, path, infotext)
        return result

    @staticmethod
    def _check_size(p, pixels: int, tiles: int) -> None:
        limits = getattr(p.backend, "limits", None)
        if limits is None:
            return
        if pixels > limits.max_grid_pixels:
            raise InvalidRequest(FIELD, f"the upscaled picture would have {pixels} pixels, over "
                                        f"{limits.max_grid_pixels} (the grid limit: a multiple of --max-pixels)")
        if tiles > limits.max_grid_images:
            raise InvalidRequest(FIELD, f"{tiles} tiles to redraw, over {limits.max_grid_images} (the grid limit: "
                                        "a multiple of --max-batch); use larger tiles (width, height) or a smaller "
                                        "scale factor")


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    return positions(max(length, tile), tile, overlap)  # a picture smaller than a tile is padded to one
