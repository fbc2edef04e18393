"""A1111's batch grid: when a job makes more than one image, one picture of them all in rows and columns,
saved to outputs/txt2img-grids/<date>/ with the first image's infotext, and put first in the result
(first in the gallery, first in the API's `images`, as A1111 returns it). The setting `grid_save` turns it off."""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image

from modules.settings import Settings, default_settings_file

GRID_FOLDER = "txt2img-grids"
SETTING = "grid_save"


def grids_enabled(settings_file: Path | None = None) -> bool:
    return bool(Settings(settings_file or default_settings_file()).get(SETTING))


def grid_rows(count: int) -> int:
    """A1111's default layout (n_rows = -1): about as many rows as columns, never more rows than images."""
    return max(1, min(count, round(math.sqrt(count))))


def grid_image(pictures: list[Image.Image]) -> Image.Image:
    rows = grid_rows(len(pictures))
    columns = math.ceil(len(pictures) / rows)
    width, height = pictures[0].size
    grid = Image.new("RGB", (columns * width, rows * height), "black")
    for index, picture in enumerate(pictures):
        if picture.size != (width, height):
            picture = picture.resize((width, height), Image.NEAREST)
        grid.paste(picture.convert("RGB"), ((index % columns) * width, (index // columns) * height))
    return grid


def add_batch_grid(result, hooks, enabled: bool | None = None, folder: str = GRID_FOLDER):
    """Put the grid of `result`'s images first (images, infotexts, seeds stay aligned; A1111's
    index_of_first_image says where the single images start); saved under outputs/`folder` when the job saves
    its images, without the per-image hooks (a grid is not one of the job's images)."""
    from modules.capabilities.base import SaveSpec
    from modules.capabilities.scripting import ImageNotSaved

    request = result.request
    if request.batch_count * request.batch_size <= 1 or len(result.images) <= 1:
        return result  # one picture: no grid, and no settings file to read
    if not (grids_enabled() if enabled is None else enabled):
        return result
    grid = grid_image(result.images)
    text = result.infotexts[0]
    grid.info["parameters"] = text
    if request.save_images:
        try:
            path = hooks.save_image(grid, text, SaveSpec(folder, result.seeds[0]))
            if path is not None:
                result.paths.insert(0, path)
        except ImageNotSaved as e:
            result.save_errors.append(str(e))
    result.images.insert(0, grid)
    result.infotexts.insert(0, text)
    result.seeds.insert(0, result.seeds[0])
    if result.subseeds:
        result.subseeds.insert(0, result.subseeds[0])
    result.index_of_first_image = 1
    return result
