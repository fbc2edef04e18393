"""The txt2img request: every value a job needs, validated once, with errors naming the field."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

from modules.capabilities.txt2img.hires import check_upscaler, target_size, validate_hires
from modules.errors import InvalidRequest
from modules.generation.samplers import AUTOMATIC, resolve
from modules.generation.seeds import MAX_API_SEED, wrapped_seed
from modules.job_limits import check_image, check_txt2img
from modules.user_values import shown

MAX_SIDE = 2048
MAX_PIXELS = 2048 * 2048
MAX_SEED = 2**32 - 1
# Long A1111 prompts run to a few thousand characters; 20 000 is several times that (about 5000 CLIP
# tokens) and still parses in milliseconds. Encoding is bounded separately, by MAX_PROMPT_CHUNKS.
MAX_PROMPT_CHARS = 20_000


@dataclass
class Txt2ImgRequest:
    prompt: str = ""
    negative_prompt: str = ""
    sampler: str = "Euler a"
    scheduler: str = AUTOMATIC  # A1111's "Schedule type" (API field `scheduler`): Karras, Exponential, ...
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    seed: int = -1  # -1: pick a random seed
    # Variation seeds (A1111's names): the seed's noise blended towards the subseed's by subseed_strength;
    # seed_resize_from_w/h (> 0) draw the noise at that size, so the picture keeps its composition.
    subseed: int = -1  # -1: a random one
    subseed_strength: float = 0.0
    seed_resize_from_w: int = -1
    seed_resize_from_h: int = -1
    batch_count: int = 1
    batch_size: int = 1
    checkpoint: str | None = None  # None: the default checkpoint
    clip_skip: int | None = None  # None: the CLIP_stop_at_last_layers setting (Backend.job_defaults), else 1
    save_images: bool | None = None  # None: the samples_save setting, else save
    # Hires fix (A1111's API names): a second, img2img pass at a larger size (hires.py).
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_upscaler: str = "Latent"
    hr_second_pass_steps: int = 0  # 0: as many as the first pass
    denoising_strength: float = 0.7
    hr_sampler_name: str = ""  # "": the first pass's sampler
    hr_prompt: str = ""  # "": the first pass's prompt
    hr_negative_prompt: str = ""

    def validated(self) -> "Txt2ImgRequest":
        """Return a copy with normalised values, or raise InvalidRequest naming the first bad field."""
        r = Txt2ImgRequest(**{f.name: getattr(self, f.name) for f in fields(self)})
        r.prompt = _text(r.prompt, "prompt")
        r.negative_prompt = _text(r.negative_prompt, "negative_prompt")
        r.sampler, r.scheduler = resolve(r.sampler, r.scheduler)
        r.steps = _integer(r.steps, "steps", 1, 150)
        r.cfg_scale = _number(r.cfg_scale, "cfg_scale", 0.0, 30.0)
        r.width = _side(r.width, "width")
        r.height = _side(r.height, "height")
        if r.width * r.height > MAX_PIXELS:
            raise InvalidRequest("width", f"{r.width}x{r.height} is over the limit of {MAX_PIXELS} pixels")
        r.seed = wrapped_seed(_integer(r.seed, "seed", -1, MAX_API_SEED))  # A1111's seeds go up to 2**64 - 1
        r.subseed = wrapped_seed(_integer(r.subseed, "subseed", -1, MAX_API_SEED))
        r.subseed_strength = _number(r.subseed_strength, "subseed_strength", 0.0, 1.0)
        r.seed_resize_from_w = max(0, _integer(r.seed_resize_from_w, "seed_resize_from_w", -1, MAX_SIDE))
        r.seed_resize_from_h = max(0, _integer(r.seed_resize_from_h, "seed_resize_from_h", -1, MAX_SIDE))
        r.batch_count = _integer(r.batch_count, "batch_count", 1, 100)
        r.batch_size = _integer(r.batch_size, "batch_size", 1, 8)
        r.clip_skip = _integer(1 if r.clip_skip is None else r.clip_skip, "clip_skip", 1, 12)
        r.save_images = True if r.save_images is None else r.save_images
        if r.checkpoint is not None and not isinstance(r.checkpoint, str):
            raise InvalidRequest("checkpoint", "must be a checkpoint title or name")
        r.checkpoint = (r.checkpoint or "").strip() or None
        validate_hires(r, MAX_SIDE, MAX_PIXELS, _integer, _number, _text)
        return r

    @property
    def output_size(self) -> tuple[int, int]:
        """The size of the images the job returns: the hires fix's when enabled."""
        return target_size(self) if self.enable_hr else (self.width, self.height)


def validate(request: Txt2ImgRequest, context) -> Txt2ImgRequest:
    """The request as a job runs it: its own values checked, then the server's --max-* limits and the
    checkpoint's text-encoder depth (clip skip). `context`: a modules.capabilities.base.RunContext.
    What the request leaves open (checkpoint, clip skip, saving) comes from the settings first."""
    if context.backend is not None:
        request = context.backend.job_defaults(request, context.job.owner if context.job else None)
    request = request.validated()
    check_txt2img(request, context.limits)
    if request.enable_hr:
        check_image(*request.output_size, context.limits, field="hr_scale")
        if context.backend is not None:
            check_upscaler(request, context.backend.manager)
    if context.backend is not None:
        context.backend.check_clip_skip(request.clip_skip, request.checkpoint)
    return request


def _text(value, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(field, "must be text")
    if "\x00" in value:
        raise InvalidRequest(field, "contains a NUL character")
    if len(value) > MAX_PROMPT_CHARS:
        raise InvalidRequest(field, f"is {len(value)} characters long, over the limit of {MAX_PROMPT_CHARS}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate such as "\ud800": not text any tokenizer or PNG can hold
        raise InvalidRequest(field, f"contains an invalid character at position {e.start} "
                                    "(an unpaired surrogate)") from None
    return value


def _integer(value, field: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise InvalidRequest(field, "must be a whole number")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise InvalidRequest(field, f"must be a whole number, got {shown(value)}")
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise InvalidRequest(field, f"must be a whole number, got {shown(value)}") from None
    if not isinstance(value, int):
        raise InvalidRequest(field, "must be a whole number")
    if not low <= value <= high:
        raise InvalidRequest(field, f"must be between {low} and {high}, got {shown(value)}")
    return value


def _number(value, field: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int too large for a float
        raise InvalidRequest(field, f"must be a number, got {shown(value)}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise InvalidRequest(field, f"must be a finite number, got {shown(value)}")
    if not low <= number <= high:
        raise InvalidRequest(field, f"must be between {low:g} and {high:g}, got {number:g}")
    return number


def _side(value, field: str) -> int:
    """A side rounded down to a multiple of 8, as A1111 does (its latents are side // 8 wide)."""
    return _integer(value, field, 8, MAX_SIDE) // 8 * 8
