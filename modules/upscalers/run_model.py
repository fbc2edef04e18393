"""One run of a spandrel image model over a PIL image: to a tensor on the model's device, tiled, and back."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from modules.upscalers.tiled import OVERLAP, TILE, run_tiled


def to_tensor(image: Image.Image, device, dtype) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].to(device=device, dtype=dtype)


def to_image(tensor: torch.Tensor) -> Image.Image:
    array = tensor[0].float().clamp(0, 1).permute(1, 2, 0).mul(255).round().byte().cpu().numpy()
    return Image.fromarray(array, "RGB")


def run_model(model, image: Image.Image, check: Callable[[], None] = lambda: None,
              tile: int = TILE, overlap: int = OVERLAP) -> Image.Image:
    """The model's output for `image` (model.scale times its size), in tiles of `tile` pixels."""
    parameter = next(model.model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    tensor = to_tensor(image, device, dtype)
    needs = model.size_requirements
    tile = max(tile, needs.minimum)
    if needs.multiple_of > 1:
        tile -= tile % needs.multiple_of
    return to_image(run_tiled(lambda part: _call(model, part), tensor, model.scale, tile, overlap, check))


def _call(model, part: torch.Tensor) -> torch.Tensor:
    """The model on one tile, padded by reflection where the tile is too small or not a multiple its
    architecture needs, and the padding's output cut off again."""
    needs = model.size_requirements
    _, _, height, width = part.shape
    multiple = max(needs.multiple_of, 1)
    want_h = max(needs.minimum, -(-height // multiple) * multiple)
    want_w = max(needs.minimum, -(-width // multiple) * multiple)
    if needs.square:
        want_h = want_w = max(want_h, want_w)
    if (want_h, want_w) != (height, width):
        mode = "reflect" if want_h - height < height and want_w - width < width else "replicate"
        part = torch.nn.functional.pad(part, (0, want_w - width, 0, want_h - height), mode=mode)
    out = model(part)
    return out[:, :, :height * model.scale, :width * model.scale]
