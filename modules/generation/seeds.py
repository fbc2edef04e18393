"""Seed lists as users type them: ``0,1,4-6`` -> [0, 1, 4, 5, 6]; and the seed → latent rule.

A seed's latent is drawn on the CPU from ``torch.Generator().manual_seed(seed)`` (torch's CPU
Mersenne Twister), so a seed gives the same z on any device and in any batch.
NVIDIA's StyleGAN tools use ``np.random.RandomState(seed).randn(z_dim)`` instead: StyleGAN files take that
rule (``rule="numpy"``), so their seeds show the pictures StyleGAN users know; ours matches how the txt2img
noise is drawn here."""
from __future__ import annotations

import math
import re

import torch

from modules.errors import InvalidRequest

MAX_SEED = 2**32 - 1
MAX_SEEDS = 256  # one request; a bigger grid is unreadable and slow on a CPU

_ITEM = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_seeds(text, field: str = "seeds", limit: int = MAX_SEEDS) -> list[int]:
    """Seeds from "0,1,4-6" (commas or spaces between items, inclusive ranges), or from a list of ints.

    Raises InvalidRequest naming ``field`` and the bad item."""
    if isinstance(text, bool):
        raise InvalidRequest(field, "must be seeds like 0,1,4-6")
    if isinstance(text, int):
        text = str(text)
    if isinstance(text, (list, tuple)):
        text = ",".join(str(s) for s in text)
    if not isinstance(text, str):
        raise InvalidRequest(field, "must be seeds like 0,1,4-6")
    items = [item for item in re.split(r"[,\s]+", re.sub(r"\s*-\s*", "-", text)) if item]
    if not items:
        raise InvalidRequest(field, "is empty: give at least one seed, e.g. 0 or 0,1,4-6")
    seeds: list[int] = []
    for item in items:
        match = _ITEM.match(item)
        if not match:
            raise InvalidRequest(field, f"{item!r} is not a seed or a range: use whole numbers from 0 to {MAX_SEED} "
                                        f"and ranges like 4-6, separated by commas")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        for seed in (first, last):
            if seed > MAX_SEED:
                raise InvalidRequest(field, f"seed {seed} is over the largest seed {MAX_SEED}")
        if last < first:
            raise InvalidRequest(field, f"range {item!r} runs backwards: write it as {last}-{first}")
        if len(seeds) + last - first + 1 > limit:
            raise InvalidRequest(field, f"{item!r} makes more than {limit} seeds in one request")
        seeds.extend(range(first, last + 1))
    return seeds


def format_seeds(seeds: list[int]) -> str:
    """The shortest text parse_seeds reads back as ``seeds`` (runs of 3 or more become ranges)."""
    parts, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{seeds[i]}-{seeds[j]}")
        else:
            parts.extend(str(s) for s in seeds[i:j + 1])
        i = j + 1
    return ",".join(parts)


def shift_seeds(text: str, direction: int) -> str:
    """The previous (-1) or next (+1) page of seeds: every seed moves by the list's length
    (a single seed steps by one). A page that would go below 0 stays where it is."""
    seeds = parse_seeds(text)
    step = direction * len(seeds)
    if min(seeds) + step < 0 or max(seeds) + step > MAX_SEED:
        return format_seeds(seeds)
    return format_seeds([s + step for s in seeds])


SEED_RULES = ("torch", "numpy")


def seed_latent(seed: int, z_dim: int, rule: str = "torch") -> torch.Tensor:
    """z [z_dim] for ``seed``: float32, CPU, the same on every machine. Rule "numpy" is NVIDIA's StyleGAN
    tools' (gen_images.py: ``np.random.RandomState(seed).randn(1, z_dim)``, float64 made float32 by the
    mapping network), so a seed shows the picture StyleGAN users know."""
    if rule == "numpy":
        import numpy as np
        return torch.from_numpy(np.random.RandomState(int(seed)).randn(z_dim)).to(torch.float32)
    return torch.randn(z_dim, generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=torch.float32)


# The seed plane: integer point (i, j) is seed i + j * PLANE_WIDTH (mod 2**32), so x steps through
# consecutive seeds and y jumps by PLANE_WIDTH. Between integer points the latent is the bilinear
# blend of the four neighbours' latents, divided by the root of the summed squared weights: a plain
# blend of independent Gaussians has less variance in the middle (half at a cell's centre), which
# would drift towards the average image; renormalised, it stays a standard normal sample.
PLANE_WIDTH = 1000


def plane_seed(i: int, j: int) -> int:
    return (int(i) + int(j) * PLANE_WIDTH) % (MAX_SEED + 1)


def plane_point(seed: int) -> tuple[int, int]:
    """The integer point of the plane whose seed is ``seed`` (x < PLANE_WIDTH)."""
    return seed % PLANE_WIDTH, seed // PLANE_WIDTH


def plane_square(seed: int) -> list[int]:
    """The four seeds round the plane's square whose top-left corner is ``seed``, clockwise: the key
    frames of a video made from one seed (after Snap, say), so it shows that seed's neighbourhood."""
    i, j = plane_point(seed)
    return [plane_seed(i, j), plane_seed(i + 1, j), plane_seed(i + 1, j + 1), plane_seed(i, j + 1)]


def nearest_plane_seed(x: float, y: float) -> int:
    return plane_seed(math.floor(x + 0.5), math.floor(y + 0.5))


def plane_latent(x: float, y: float, z_dim: int, rule: str = "torch") -> torch.Tensor:
    """z [z_dim] at (x, y); exactly seed_latent(plane_seed(x, y)) at integer points."""
    i, j = math.floor(x), math.floor(y)
    fx, fy = x - i, y - j
    corners = [((i, j), (1 - fx) * (1 - fy)), ((i + 1, j), fx * (1 - fy)),
               ((i, j + 1), (1 - fx) * fy), ((i + 1, j + 1), fx * fy)]
    corners = [(point, weight) for point, weight in corners if weight > 0]
    if len(corners) == 1:
        return seed_latent(plane_seed(*corners[0][0]), z_dim, rule)
    blend = sum(weight * seed_latent(plane_seed(*point), z_dim, rule).double() for point, weight in corners)
    return (blend / math.sqrt(sum(weight ** 2 for _, weight in corners))).float()


# ---------------------------------------------------------------- variation seeds (A1111's)

SEED_WRAP = 2**32  # torch's CPU generator reads the low 32 bits of a seed: seed + 2**32 is the same noise
MAX_API_SEED = 2**64 - 1  # the largest seed torch (and so A1111) takes


def wrapped_seed(seed: int) -> int:
    """A seed from 2**32 up to 2**64 - 1 as the seed in 0 .. 2**32 - 1 that draws the same noise."""
    return seed % SEED_WRAP if seed >= 0 else seed


def slerp(strength: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's spherical blend of two noises [C, H, W] (modules/rng.py, as it is: norms along dim 1)."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * strength + high * (1 - strength)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - strength) * omega) / so).unsqueeze(1) * low + \
        (torch.sin(strength * omega) / so).unsqueeze(1) * high


def image_noise(generator: torch.Generator, seed: int, shape: tuple[int, int, int], subseed: int | None = None,
                strength: float = 0.0, resize_from: tuple[int, int] = (0, 0), scale: int = 8) -> torch.Tensor:
    """One image's first noise [C, H, W], as A1111's ImageRNG.first: the seed's noise, blended towards the
    variation seed's by `strength`; with `resize_from` (width, height in pixels) both are drawn at that size
    and pasted, centred, into the seed's noise at this size, so a picture keeps its composition when the size
    changes. `generator` (seeded with `seed`) advances by one draw, as A1111's does, for the sampler's later noise."""
    noise = torch.randn(shape, generator=generator)
    width, height = resize_from
    small = (shape[0], int(height) // scale, int(width) // scale) if width > 0 and height > 0 else shape
    if small == shape and (subseed is None or strength == 0):
        return noise
    base = noise if small == shape else torch.randn(small, generator=torch.Generator().manual_seed(seed))
    if subseed is not None and strength != 0:
        base = slerp(strength, base, torch.randn(small, generator=torch.Generator().manual_seed(subseed)))
    if small == shape:
        return base
    dx, dy = (shape[2] - small[2]) // 2, (shape[1] - small[1]) // 2
    w = small[2] if dx >= 0 else small[2] + 2 * dx
    h = small[1] if dy >= 0 else small[1] + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    dx, dy = max(-dx, 0), max(-dy, 0)
    noise[:, ty:ty + h, tx:tx + w] = base[:, dy:dy + h, dx:dx + w]
    return noise
