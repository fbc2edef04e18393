"""Overlapping tiles of a picture, and the tiles blended back into one picture without seams.

    xs = positions(300, 128, 32)          -> [0, 86, 172]: tiles 128 wide, neighbours overlap ≥ 32 px
    pieces = split(image, 128, 128, 32)   -> [Tile(x, y, image)], row by row
    blend(pieces, image.size)             -> one picture; where tiles overlap they cross-fade linearly

Tiles are spread evenly, so the last one ends at the picture's edge and every overlap is at least the one
asked for. A picture smaller than a tile is the caller's to pad first."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass
class Tile:
    x: int
    y: int
    image: Image.Image


def positions(length: int, tile: int, overlap: int) -> list[int]:
    """Where tiles of `tile` pixels start along `length` so neighbours share at least `overlap` pixels."""
    if length <= tile:
        return [0]
    step = tile - overlap
    count = math.ceil((length - overlap) / step)
    spread = (length - tile) / (count - 1)
    return [min(round(i * spread), length - tile) for i in range(count)]


def split(image: Image.Image, tile_w: int, tile_h: int, overlap: int) -> list[Tile]:
    return [Tile(x, y, image.crop((x, y, x + tile_w, y + tile_h)))
            for y in positions(image.height, tile_h, overlap) for x in positions(image.width, tile_w, overlap)]


def _ramps(starts: list[int], tile: int) -> dict[int, np.ndarray]:
    """Per start, the weights across one tile: 1 inside, rising over the overlap with the previous tile
    and falling over the overlap with the next, so two neighbours' weights add up to 1 everywhere."""
    ramps = {}
    for i, start in enumerate(starts):
        weights = np.ones(tile)
        if i > 0 and (shared := starts[i - 1] + tile - start) > 0:
            weights[:shared] = np.minimum(weights[:shared], (np.arange(shared) + 0.5) / shared)
        if i + 1 < len(starts) and (shared := start + tile - starts[i + 1]) > 0:
            weights[tile - shared:] = np.minimum(weights[tile - shared:], (shared - np.arange(shared) - 0.5) / shared)
        ramps[start] = weights
    return ramps


def blend(tiles: list[Tile], size: tuple[int, int]) -> Image.Image:
    """The tiles (all of one size, as `split` made them, each possibly redrawn) as one picture of `size`."""
    width, height = size
    tile_w, tile_h = tiles[0].image.size
    across = _ramps(sorted({t.x for t in tiles}), tile_w)
    down = _ramps(sorted({t.y for t in tiles}), tile_h)
    total = np.zeros((height, width, 3))
    weight = np.zeros((height, width, 1))
    for t in tiles:
        w = (down[t.y][:, None] * across[t.x][None, :])[..., None]
        pixels = np.asarray(t.image.convert("RGB").resize((tile_w, tile_h)), dtype=np.float64)
        total[t.y:t.y + tile_h, t.x:t.x + tile_w] += w * pixels
        weight[t.y:t.y + tile_h, t.x:t.x + tile_w] += w
    return Image.fromarray(np.clip(np.rint(total / np.maximum(weight, 1e-9)), 0, 255).astype(np.uint8))
