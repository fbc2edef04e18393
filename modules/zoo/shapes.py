"""Shapes: a procedural data set of coloured shapes with known factors and English captions.

Every image is RGB, 32x32 (``IMAGE_SIZE``), and holds one or two shapes on a plain
background. Nothing is read from disk: a scene is drawn from a seeded
``numpy.random.Generator`` and rendered with PIL at 4x resolution, then box-filtered
down, so edges are anti-aliased. The same seed always gives the same images and
captions.

Factors of one shape
    kind      SHAPES     circle, square, triangle, star, cross
    colour    COLOURS    red, orange, yellow, green, cyan, blue, purple, magenta
    size      SIZES      small (radius 5 px), large (radius 8 px)
    position  POSITIONS  a 3x3 grid of named regions (centres at 8/16/24 px, +-1 px jitter):
                         top left, top, top right, left, center, right,
                         bottom left, bottom, bottom right
Factor of the image
    background BACKGROUNDS white, black, gray

Two-shape scenes put the shapes two grid cells apart (e.g. left column and right
column) so they do not overlap much; they never share a position.

Caption grammar (``caption``)::

    caption  := shape_phrase [" and " shape_phrase] [" on a " background " background"]
    shape_phrase := "a " [size " "] colour " " kind [" " place]
    place    := "in the center" | "at the top" | "at the bottom" | "on the left"
              | "on the right" | "in the top left" | "in the top right"
              | "in the bottom left" | "in the bottom right"

The full caption names every factor, e.g. "a large red circle in the top left on a
white background". ``random_caption`` leaves out size, place and background each
with probability 0.3 (independently), so short prompts such as "a red circle on a
white background" are in the training distribution too.

``HELDOUT_COMBOS`` lists (kind, colour, position) triples that training data never
shows; evaluation prompts use them to test generalisation to unseen prompts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 32
SUPERSAMPLE = 4

SHAPES = ("circle", "square", "triangle", "star", "cross")
COLOURS = {
    "red": (220, 30, 30),
    "orange": (255, 135, 0),
    "yellow": (245, 220, 0),
    "green": (30, 170, 50),
    "cyan": (0, 205, 220),
    "blue": (35, 70, 235),
    "purple": (125, 40, 180),
    "magenta": (235, 0, 200),
}
COLOUR_NAMES = tuple(COLOURS)
SIZES = {"small": 5.0, "large": 8.0}
SIZE_NAMES = tuple(SIZES)
POSITIONS = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128)}
BACKGROUND_NAMES = tuple(BACKGROUNDS)

_PLACE_PHRASE = {
    "top left": "in the top left", "top": "at the top", "top right": "in the top right",
    "left": "on the left", "center": "in the center", "right": "on the right",
    "bottom left": "in the bottom left", "bottom": "at the bottom", "bottom right": "in the bottom right",
}
_GRID_CENTRES = (8.0, 16.0, 24.0)
OMIT_PROBABILITY = 0.3


def _heldout_combos() -> frozenset[tuple[str, str, str]]:
    # 10% of all kind x colour x position triples, fixed forever by this seed.
    all_combos = [(k, c, p) for k in SHAPES for c in COLOUR_NAMES for p in POSITIONS]
    picked = np.random.default_rng(20240603).choice(len(all_combos), size=len(all_combos) // 10, replace=False)
    return frozenset(all_combos[i] for i in sorted(picked))


HELDOUT_COMBOS = _heldout_combos()


@dataclass(frozen=True)
class ShapeSpec:
    kind: str
    colour: str
    size: str
    position: str
    jitter: tuple[float, float] = (0.0, 0.0)  # pixels, added to the grid centre

    @property
    def combo(self) -> tuple[str, str, str]:
        return (self.kind, self.colour, self.position)


@dataclass(frozen=True)
class Scene:
    shapes: tuple[ShapeSpec, ...]
    background: str = "white"
    extra: dict = field(default_factory=dict, compare=False)


# ---------------------------------------------------------------- captions

def shape_phrase(shape: ShapeSpec, with_size: bool = True, with_place: bool = True) -> str:
    words = ["a"] + ([shape.size] if with_size else []) + [shape.colour, shape.kind]
    if with_place:
        words.append(_PLACE_PHRASE[shape.position])
    return " ".join(words)


def caption(scene: Scene, with_size: bool = True, with_place: bool = True, with_background: bool = True) -> str:
    text = " and ".join(shape_phrase(s, with_size, with_place) for s in scene.shapes)
    if with_background:
        text += f" on a {scene.background} background"
    return text


def random_caption(scene: Scene, rng: np.random.Generator) -> str:
    """The caption with size, place and background each left out with probability 0.3."""
    keep = rng.random(3) >= OMIT_PROBABILITY
    return caption(scene, with_size=bool(keep[0]), with_place=bool(keep[1]), with_background=bool(keep[2]))


def caption_vocabulary() -> list[str]:
    """Every word any caption can contain."""
    words = {"a", "and", "on", "background", "in", "the", "at"}
    words.update(SHAPES, COLOUR_NAMES, SIZE_NAMES, BACKGROUND_NAMES)
    for phrase in _PLACE_PHRASE.values():
        words.update(phrase.split())
    return sorted(words)


# ---------------------------------------------------------------- sampling

def _grid_cell(position: str) -> tuple[int, int]:
    index = POSITIONS.index(position)
    return index // 3, index % 3  # row, column


def sample_scene(rng: np.random.Generator, two_shape_probability: float = 0.0,
                 exclude_heldout: bool = True) -> Scene:
    """Draw a random scene. With ``exclude_heldout`` no shape uses a held-out (kind, colour, position)."""
    background = BACKGROUND_NAMES[rng.integers(len(BACKGROUND_NAMES))]
    n_shapes = 2 if rng.random() < two_shape_probability else 1
    shapes: list[ShapeSpec] = []
    while len(shapes) < n_shapes:
        kind = SHAPES[rng.integers(len(SHAPES))]
        colour = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))]
        size = SIZE_NAMES[rng.integers(len(SIZE_NAMES))]
        position = POSITIONS[rng.integers(len(POSITIONS))]
        jitter = (float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1)))
        if exclude_heldout and (kind, colour, position) in HELDOUT_COMBOS:
            continue
        if shapes:
            (r0, c0), (r1, c1) = _grid_cell(shapes[0].position), _grid_cell(position)
            if max(abs(r0 - r1), abs(c0 - c1)) < 2:
                if shapes[0].position == "center":  # nothing is two cells from the centre
                    shapes.clear()
                continue
        shapes.append(ShapeSpec(kind, colour, size, position, jitter))
    return Scene(tuple(shapes), background)


# ---------------------------------------------------------------- rendering

def _polygon(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if kind == "square":
        h = r * 0.85
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if kind == "triangle":
        angles = np.deg2rad([-90, 30, 150])
        return [(cx + r * np.cos(a), cy + 0.15 * r + r * np.sin(a)) for a in angles]
    if kind == "star":
        points = []
        for i in range(10):
            radius = r if i % 2 == 0 else r * 0.45
            a = np.deg2rad(-90 + 36 * i)
            points.append((cx + radius * np.cos(a), cy + 0.08 * r + radius * np.sin(a)))
        return points
    if kind == "cross":
        w = r * 0.36
        return [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w), (cx + r, cy + w),
                (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r), (cx - w, cy + w), (cx - r, cy + w),
                (cx - r, cy - w), (cx - w, cy - w)]
    raise ValueError(f"unknown shape kind {kind!r}")


def render(scene: Scene, size: int = IMAGE_SIZE) -> np.ndarray:
    """The scene as uint8 [size, size, 3]."""
    s = SUPERSAMPLE * size / IMAGE_SIZE  # grid coordinates are in 32-px units
    canvas = Image.new("RGB", (SUPERSAMPLE * size,) * 2, BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(canvas)
    for shape in scene.shapes:
        row, column = _grid_cell(shape.position)
        cx = (_GRID_CENTRES[column] + shape.jitter[0]) * s
        cy = (_GRID_CENTRES[row] + shape.jitter[1]) * s
        r = SIZES[shape.size] * s
        fill = COLOURS[shape.colour]
        if shape.kind == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_polygon(shape.kind, cx, cy, r), fill=fill)
    return np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.uint8)


# ---------------------------------------------------------------- data sets

@dataclass
class ShapesData:
    images: np.ndarray          # uint8 [N, H, W, 3]
    scenes: list[Scene]

    def __len__(self) -> int:
        return len(self.scenes)

    def tensors(self):
        """Images as float32 torch tensor [N, 3, H, W] in [-1, 1]."""
        import torch
        return torch.from_numpy(self.images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)

    def labels(self, factor: str) -> np.ndarray:
        """Index of the first shape's factor (or the background) per image, int64 [N]."""
        names = factor_names(factor)
        if factor == "background":
            return np.array([names.index(sc.background) for sc in self.scenes], dtype=np.int64)
        return np.array([names.index(getattr(sc.shapes[0], factor)) for sc in self.scenes], dtype=np.int64)


FACTORS = ("kind", "colour", "size", "position", "background")


def factor_names(factor: str) -> tuple[str, ...]:
    return {"kind": SHAPES, "colour": COLOUR_NAMES, "size": SIZE_NAMES,
            "position": POSITIONS, "background": BACKGROUND_NAMES}[factor]


def make_dataset(n: int, seed: int, two_shape_probability: float = 0.0,
                 exclude_heldout: bool = True, size: int = IMAGE_SIZE) -> ShapesData:
    """``n`` images and their scenes; identical for identical arguments."""
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, two_shape_probability, exclude_heldout) for _ in range(n)]
    images = np.stack([render(sc, size) for sc in scenes]) if scenes else np.zeros((0, size, size, 3), np.uint8)
    return ShapesData(images, scenes)


def save_grid(images: np.ndarray, path, columns: int = 8, scale: int = 2) -> None:
    """Write uint8 [N, H, W, 3] images as one PNG grid (used by the training scripts)."""
    n, h, w, _ = images.shape
    rows = (n + columns - 1) // columns
    grid = np.full((rows * (h + 2), columns * (w + 2), 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (h + 2) + 1: r * (h + 2) + 1 + h, c * (w + 2) + 1: c * (w + 2) + 1 + w] = img
    Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST).save(path)
