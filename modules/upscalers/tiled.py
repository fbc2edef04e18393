"""Running an image model over an image in overlapping tiles, so memory stays bounded by the tile size
(a 4x upscale of a 2048x2048 image would otherwise need the whole activation maps at once).

Each tile's output is weighted by a ramp that falls towards the tile's inner edges, and the sums are
divided by the summed weights, so seams blend away; at the image border the weight stays full."""
from __future__ import annotations

from collections.abc import Callable

import torch

TILE = 256     # input pixels per tile side: a real 4x ESRGAN needs about 1 GB of activations for one (A1111: 192)
OVERLAP = 24   # input pixels shared by neighbouring tiles (A1111: 8), blended linearly


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _ramp(length: int, fade: int, fade_start: bool, fade_end: bool) -> torch.Tensor:
    """1 in the middle, rising linearly over `fade` pixels at the ends that meet another tile."""
    weight = torch.ones(length)
    if fade <= 0:
        return weight
    ramp = (torch.arange(fade, dtype=torch.float32) + 1) / (fade + 1)
    if fade_start:
        weight[:fade] = ramp
    if fade_end:
        weight[-fade:] = ramp.flip(0)
    return weight


@torch.inference_mode()
def run_tiled(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, scale: int,
              tile: int = TILE, overlap: int = OVERLAP, check: Callable[[], None] = lambda: None) -> torch.Tensor:
    """model(image) for a (1, C, H, W) image, computed tile by tile; `scale` is the model's output/input
    ratio. `check()` is called between tiles (to stop an interrupted job)."""
    _, _, height, width = image.shape
    if height <= tile and width <= tile:
        return model(image)
    overlap = min(overlap, tile // 2)
    out = None
    weights = None
    ys, xs = _starts(height, tile, overlap), _starts(width, tile, overlap)
    for y in ys:
        for x in xs:
            check()
            part = model(image[:, :, y:y + tile, x:x + tile])
            if out is None:
                out = torch.zeros(1, part.shape[1], height * scale, width * scale, dtype=torch.float32,
                                  device=image.device)
                weights = torch.zeros(1, 1, height * scale, width * scale, device=image.device)
            th, tw = part.shape[2], part.shape[3]
            fade = overlap * scale
            wy = _ramp(th, fade, y > 0, y + tile < height)
            wx = _ramp(tw, fade, x > 0, x + tile < width)
            w = (wy[:, None] * wx[None, :]).to(image.device)[None, None]
            out[:, :, y * scale:y * scale + th, x * scale:x * scale + tw] += part.float() * w
            weights[:, :, y * scale:y * scale + th, x * scale:x * scale + tw] += w
    return out / weights
