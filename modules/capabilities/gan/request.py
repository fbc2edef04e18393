"""The GAN requests (sample a grid; render an interpolation video), validated once, errors naming the field.

What the model decides (is this class name one of its classes? does it have per-layer styles for
a truncation cutoff or style mixing?) is checked in run.py against the loaded model."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from modules.errors import InvalidRequest
from modules.generation.seeds import MAX_SEED, MAX_SEEDS, parse_seeds
from modules.capabilities.txt2img.request import _integer, _number

ALL_CLASSES = "All classes"  # one grid row per class
PSI_RANGE = (-1.0, 2.0)      # as StyleGAN3's visualizer: ψ < 0 walks past the average to the "opposite" image
PLANE_LIMIT = 1e9
VIDEO_FORMATS = ("gif", "mp4")
NOT_A_NUMBER = (TypeError, ValueError, OverflowError)  # OverflowError: an int too large for a float


@dataclass
class GanRequest:
    model: str | None = None                # title, name or hash from models/GAN; None: the first (built-in)
    seeds: str | list[int] = "0"            # "0,1,4-6"
    truncation_psi: float = 1.0
    class_name: str | int | None = None     # a class name or index, ALL_CLASSES, or None: the first class
    truncation_cutoff: int | None = None    # per-layer models: truncate layers [0, cutoff); None: all
    style_mix_seed: int | None = None       # per-layer models: layers from style_mix_from on take this seed's w
    style_mix_from: int = 1                 # 0: every layer (the mix seed's own image); num_ws: none
    style_mix_to: int | None = None         # end of the mixed layers (exclusive); None: the last layer
    style_mix_seeds: str | list[int] | None = None  # a style-mixing grid: rows = seeds, columns = these seeds
    position: tuple[float, float] | None = None  # a point of the seed plane instead of the seeds
    latents: list[dict] | None = None       # imported: [{"z": [...], "seed", "class", "position"}] or a projection's
                                            # [{"w": [[w_dim numbers] per layer, or one row]}], instead of seeds
    directions: list[dict] | None = None    # StyleGAN: [{"direction": [w_dim], "strength": s, "layers": [from, to]}]
    noise_mode: str = "const"               # StyleGAN: const (NVIDIA's default), random (from the seed), none
    translate: tuple[float, float] | str | None = None  # StyleGAN3's --translate X,Y (input shift); None: 0,0
    rotate: float = 0.0                     # StyleGAN3's --rotate, degrees
    save_images: bool = True

    def validated(self) -> "GanRequest":
        r = replace(self)
        r.model = _model(r.model)
        r.seeds = parse_seeds(r.seeds)
        r.truncation_psi = _number(r.truncation_psi, "truncation_psi", *PSI_RANGE)
        r.class_name = _class(r.class_name)
        _check_layer_controls(r)
        r.style_mix_seeds = None if _blank(r.style_mix_seeds) else parse_seeds(r.style_mix_seeds, "style_mix_seeds", 64)
        if r.style_mix_seeds is not None:
            if r.style_mix_seed is not None:
                raise InvalidRequest("style_mix_seeds", "give style_mix_seed (one seed for every image) or "
                                                        "style_mix_seeds (a grid), not both")
            if r.class_name == ALL_CLASSES or r.position is not None or r.latents is not None:
                raise InvalidRequest("style_mix_seeds", "a style-mixing grid takes seeds of one class")
            if len(r.seeds) * len(r.style_mix_seeds) > MAX_SEEDS:
                raise InvalidRequest("style_mix_seeds", f"{len(r.seeds)} × {len(r.style_mix_seeds)} images is over "
                                                        f"{MAX_SEEDS}")
        r.position = None if r.position is None else _position(r.position)
        r.latents = None if r.latents is None else _latents(r.latents)
        r.directions = None if not r.directions else _directions(r.directions)
        r.noise_mode = _noise_mode(r.noise_mode)
        r.translate = _translate(r.translate)
        r.rotate = 0.0 if _blank(r.rotate) else _number(r.rotate, "rotate", -360.0, 360.0)
        r.save_images = bool(r.save_images)
        return r


@dataclass
class GanVideoRequest:
    model: str | None = None
    seeds: str | list[int] = "0-3"          # the key frames, in order
    truncation_psi: float = 1.0
    class_name: str | int | None = None     # one class for the whole video
    frames: int = 24                        # frames per transition between two key seeds
    fps: int = 24
    loop: bool = True                       # end with the way back to the first seed
    format: str = "gif"
    size: int = 256                         # output side in pixels (nearest-neighbour upscaling)
    space: str = "w"                        # "w": lerp in w; "z": slerp in z
    save: bool = True
    truncation_cutoff: int | None = None    # per-layer models, as GanRequest's: the same for every frame
    style_mix_seed: int | None = None       # every frame takes this seed's styles in [style_mix_from, style_mix_to)
    style_mix_from: int = 1
    style_mix_to: int | None = None
    noise_mode: str = "const"               # StyleGAN; random: the first key seed's noise, the same every frame
    translate: tuple[float, float] | str | None = None  # StyleGAN3's input shift and rotation, every frame
    rotate: float = 0.0
    style_mix_seeds = None                  # no grid in a video (run.py's checks read these of both requests)
    directions = None

    def validated(self) -> "GanVideoRequest":
        r = replace(self)
        r.model = _model(r.model)
        r.seeds = parse_seeds(r.seeds)
        if len(r.seeds) < 2:
            raise InvalidRequest("seeds", "an interpolation needs at least two seeds, e.g. 0,1 or 0-3")
        r.truncation_psi = _number(r.truncation_psi, "truncation_psi", *PSI_RANGE)
        r.class_name = _class(r.class_name)
        if r.class_name == ALL_CLASSES:
            raise InvalidRequest("class_name", "a video shows one class: pick one")
        r.frames = _integer(r.frames, "frames", 2, 240)
        r.fps = _integer(r.fps, "fps", 1, 60)
        r.loop = bool(r.loop)
        r.format = str(r.format or "").strip().lower().lstrip(".")
        if r.format not in VIDEO_FORMATS:
            raise InvalidRequest("format", f"must be one of {', '.join(VIDEO_FORMATS)}, got {self.format!r}")
        r.size = _integer(r.size, "size", 16, 1024)
        if r.size % 16:
            raise InvalidRequest("size", f"must be a multiple of 16 (video codecs use 16-pixel blocks), got {r.size}")
        r.space = str(r.space or "").strip().lower()
        if r.space not in ("w", "z"):
            raise InvalidRequest("space", f"must be w (lerp) or z (slerp), got {self.space!r}")
        _check_layer_controls(r)
        r.noise_mode = _noise_mode(r.noise_mode)
        r.translate = _translate(r.translate)
        r.rotate = 0.0 if _blank(r.rotate) else _number(r.rotate, "rotate", -360.0, 360.0)
        total = (len(r.seeds) - (0 if r.loop else 1)) * r.frames
        if total > 2000:
            raise InvalidRequest("frames", f"{total} frames in all is over the limit of 2000: fewer seeds or frames")
        return r


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _optional_integer(value, field: str, low: int, high: int) -> int | None:
    return None if _blank(value) else _integer(value, field, low, high)


def _model(value) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidRequest("model", "must be a GAN title or name from models/GAN")
    return (value or "").strip() or None


def _class(value) -> str | int | None:
    if _blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidRequest("class_name", "must be a class name or number")
    return value.strip() if isinstance(value, str) else value


NOISE_MODES = ("const", "random", "none")
MAX_EDITS = 32
STRENGTH_LIMIT = 100.0


def _directions(items) -> list[dict]:
    """Latent edits: each a direction in w, a strength and the layers [from, to) it moves."""
    if not isinstance(items, list) or len(items) > MAX_EDITS:
        raise InvalidRequest("directions", f"must be a list of at most {MAX_EDITS} edits")
    checked = []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("direction"), list) or not item["direction"]:
            raise InvalidRequest("directions", f"item {n} has no direction (a list of numbers)")
        try:
            direction = [float(v) for v in item["direction"]]
            strength = float(item.get("strength", 0.0))
            start, end = (int(v) for v in item.get("layers"))
        except NOT_A_NUMBER:
            raise InvalidRequest("directions", f"item {n}: direction and strength must be numbers, layers two "
                                               "whole numbers") from None
        if not all(math.isfinite(v) for v in direction) or not math.isfinite(strength) \
                or abs(strength) > STRENGTH_LIMIT:
            raise InvalidRequest("directions", f"item {n}: numbers must be finite, the strength within "
                                               f"±{STRENGTH_LIMIT:g}")
        if not 0 <= start < end <= 64:
            raise InvalidRequest("directions", f"item {n}: layers must be a range from..to, got {start}, {end}")
        checked.append({"direction": direction, "strength": strength, "layers": (start, end)})
    if len({len(i["direction"]) for i in checked}) > 1:
        raise InvalidRequest("directions", "the directions have different lengths")
    return checked
TRANSLATE_LIMIT = 100.0  # in image widths; far outside, StyleGAN3's input is only its faded-out features


def _noise_mode(value) -> str:
    mode = "const" if _blank(value) else str(value).strip().lower()
    if mode not in NOISE_MODES:
        raise InvalidRequest("noise_mode", f"must be one of {', '.join(NOISE_MODES)}, got {value!r}")
    return mode


def _translate(value) -> tuple[float, float]:
    if _blank(value):
        return 0.0, 0.0
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    try:
        x, y = (float(v) for v in value)
    except NOT_A_NUMBER:
        raise InvalidRequest("translate", f"must be two numbers x, y (as StyleGAN3's --translate 0.3,1), "
                                          f"got {value!r}") from None
    if not all(math.isfinite(v) and abs(v) <= TRANSLATE_LIMIT for v in (x, y)):
        raise InvalidRequest("translate", f"x and y must be between -{TRANSLATE_LIMIT:g} and {TRANSLATE_LIMIT:g}")
    return x + 0.0, y + 0.0


def _position(value) -> tuple[float, float]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    try:
        x, y = (float(v) for v in value)
    except NOT_A_NUMBER:
        raise InvalidRequest("position", f"must be two numbers x, y, got {value!r}") from None
    if not all(math.isfinite(v) and 0 <= v <= PLANE_LIMIT for v in (x, y)):
        raise InvalidRequest("position", f"x and y must be between 0 and {PLANE_LIMIT:g}, got {x:g}, {y:g}")
    return x, y


def _latents(items) -> list[dict]:
    if not isinstance(items, list) or not items:
        raise InvalidRequest("latents", "must be a non-empty list of latents")
    if len(items) > MAX_SEEDS:
        raise InvalidRequest("latents", f"at most {MAX_SEEDS} latents in one request, got {len(items)}")
    checked = []
    for n, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("w"), list) and item["w"] and item.get("z") is None:
            checked.append({"z": None, "w": _w_rows(item["w"], n), "seed": None, "class": _class(item.get("class")),
                            "position": None})
            continue
        if not isinstance(item, dict) or not isinstance(item.get("z"), list) or not item["z"]:
            raise InvalidRequest("latents", f"item {n} has no z (a list of numbers) nor w (a projection's)")
        try:
            z = [float(v) for v in item["z"]]
        except NOT_A_NUMBER:
            raise InvalidRequest("latents", f"item {n}: z must be numbers") from None
        if not all(math.isfinite(v) for v in z):
            raise InvalidRequest("latents", f"item {n}: z has a value that is not finite")
        seed = item.get("seed")
        checked.append({"z": z, "w": None, "seed": None if seed is None else _integer(seed, "latents", 0, MAX_SEED),
                        "class": _class(item.get("class")),
                        "position": None if item.get("position") is None else _position(item["position"])})
    if len({_shape(i) for i in checked}) > 1:
        raise InvalidRequest("latents", "the latents have different lengths (or mix z and w)")
    return checked


def _shape(item: dict) -> tuple:
    return ("z", len(item["z"])) if item["z"] is not None else ("w", len(item["w"]), len(item["w"][0]))


def _w_rows(rows, n: int) -> list[list[float]]:
    """A projected latent: w rows, one per synthesis layer (w+), or one row for every layer."""
    if not 1 <= len(rows) <= 64 or not all(isinstance(r, list) and 1 <= len(r) <= 4096 for r in rows):
        raise InvalidRequest("latents", f"item {n}: w must be 1 to 64 rows (layers) of numbers")
    try:
        w = [[float(v) for v in row] for row in rows]
    except NOT_A_NUMBER:
        raise InvalidRequest("latents", f"item {n}: w must be numbers") from None
    if len({len(r) for r in w}) > 1 or not all(math.isfinite(v) for r in w for v in r):
        raise InvalidRequest("latents", f"item {n}: w rows must be finite and of one length")
    return w



def check_limits(request: "GanRequest | GanVideoRequest", limits) -> None:
    """A validated request against the server's limits (--max-batch for a grid, --max-pixels for a frame)."""
    from modules.job_limits import GRID_FACTOR, check_image

    size = getattr(request, "size", None)  # a video's frame side
    if size is not None:
        check_image(size, size, limits, "size")
    latents = getattr(request, "latents", None)
    count = len(latents) if latents else len(request.seeds)
    if count > limits.max_grid_images:
        raise InvalidRequest("latents" if latents else "seeds",
                             f"{count} images is over {limits.max_grid_images} ({GRID_FACTOR} × --max-batch)")


MAX_PROJECT_STEPS = 2000
# auto: perceptual when models/LPIPS holds VGG16 weights, else pixels; perceptual+pixels adds the pixels' error.
PROJECT_LOSSES = ("auto", "pixels", "perceptual", "perceptual+pixels")


@dataclass
class GanProjectRequest:
    """Image -> latent (projection.py): the w (or one w per layer, w+) whose picture is nearest the image."""
    model: str | None = None
    image: object = None                    # a PIL image (the API decodes base64 first)
    steps: int = 200                        # Adam steps, 1 to MAX_PROJECT_STEPS
    w_plus: bool = False                    # per-layer models: one w per layer (closer, less editable)
    class_name: str | int | None = None     # conditional models: the class whose w_avg it starts from
    learning_rate: float = 0.1              # NVIDIA projector's initial_learning_rate
    noise_factor: float = 0.05              # w noise at the start, × w's spread (ramped to 0 by 75% of the steps)
    seed: int = 0                           # of that w noise: the same request gives the same latent
    preview_every: int = 10                 # steps between previews; 0: none
    loss: str = "auto"                      # one of PROJECT_LOSSES; validation resolves auto
    perceptual: object = field(default=None, repr=False, compare=False)  # the VGG16 network, for the job's run

    def validated(self) -> "GanProjectRequest":
        from PIL import Image

        r = replace(self)
        r.model = _model(r.model)
        if not isinstance(r.image, Image.Image):
            raise InvalidRequest("image", "upload the picture to project")
        r.steps = _integer(r.steps, "steps", 1, MAX_PROJECT_STEPS)
        r.w_plus = bool(r.w_plus)
        r.class_name = _class(r.class_name)
        if r.class_name == ALL_CLASSES:
            raise InvalidRequest("class_name", "a projection starts from one class: pick one")
        r.learning_rate = _number(r.learning_rate, "learning_rate", 1e-4, 1.0)
        r.noise_factor = _number(r.noise_factor, "noise_factor", 0.0, 1.0)
        r.seed = _integer(r.seed, "seed", 0, MAX_SEED)
        r.preview_every = _integer(r.preview_every, "preview_every", 0, MAX_PROJECT_STEPS)
        r.loss = "auto" if _blank(r.loss) else str(r.loss).strip().lower()
        if r.loss not in PROJECT_LOSSES:
            raise InvalidRequest("loss", f"must be one of {', '.join(PROJECT_LOSSES)}, got {self.loss!r}")
        r.perceptual = None  # only the job sets it, from models/LPIPS (projection.with_perceptual)
        return r


def _check_layer_controls(r) -> None:
    """The per-layer controls a sample and a video share: truncation cutoff and one style-mix seed's layers."""
    r.truncation_cutoff = _optional_integer(r.truncation_cutoff, "truncation_cutoff", 0, 64)
    r.style_mix_seed = _optional_integer(r.style_mix_seed, "style_mix_seed", 0, MAX_SEED)
    r.style_mix_from = _integer(r.style_mix_from, "style_mix_from", 0, 64)
    r.style_mix_to = _optional_integer(r.style_mix_to, "style_mix_to", 0, 64)
    if r.style_mix_to is not None and r.style_mix_to < r.style_mix_from:
        raise InvalidRequest("style_mix_to", f"must not be below style_mix_from ({r.style_mix_from})")
