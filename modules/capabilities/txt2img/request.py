"""The txt2img request: every value a job needs, validated once, with errors naming the field."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from modules.capabilities.refiner import DEFAULT_SWITCH_AT, check_refiner, validate_refiner
from modules.capabilities.txt2img.hires import check_upscaler, target_size, validate_hires
from modules.errors import InvalidRequest
from modules.generation.prompt_schedule import prompt_schedule
from modules.generation.samplers import AUTOMATIC, find_sampler, resolve
from modules.generation.seeds import MAX_API_SEED, wrapped_seed
from modules.job_limits import check_image, check_txt2img
from modules.networks.prompt_tags import parse_prompt
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
    distilled_cfg_scale: float = 3.5  # FLUX.1 dev's guidance input (Forge's "Distilled CFG Scale"); others ignore it
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
    # Component files (VAE, text encoders) a transformer-only checkpoint needs: names in models/VAE and
    # models/text_encoder (Forge's override_settings.forge_additional_modules).
    forge_additional_modules: tuple[str, ...] = ()
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
    hr_scheduler: str = ""  # "": A1111's "Use same scheduler" (hires.hires_schedule)
    hr_prompt: str = ""  # "": the first pass's prompt
    hr_negative_prompt: str = ""
    # Refiner (A1111's API names): another checkpoint takes over at this fraction of the schedule (refiner.py).
    refiner_checkpoint: str | None = None
    refiner_switch_at: float = DEFAULT_SWITCH_AT
    # The LoRA files the prompt's `<lora:name:w>` tags name (and the hires prompt's): filled in by validate
    # (modules/networks/loras.py), whatever a caller put here.
    loras: tuple = ()
    hr_loras: tuple = ()
    disable_extra_networks: bool = False  # A1111's: the tags are taken out of the prompt, the LoRAs not used
    # Prompt styles (modules/styles.py) by name: Backend.job_defaults applies them to the prompts, once, and
    # moves the names to applied_styles (the info JSON's "styles").
    styles: list | None = None
    applied_styles: tuple = ()
    tiling: bool = False  # A1111's Tiling: pictures that tile seamlessly (modules/generation/tiling.py)
    restore_faces: bool | None = None  # A1111's Restore faces (modules/faces); None: the face_restoration option
    face_restorer: str | None = None  # set by validation (Backend.with_face_restorer): the restorer's name
    # Added to the seed of the noise ancestral samplers add at each step (A1111's ENSD); None: the setting.
    eta_noise_seed_delta: int | None = None
    vae: str | None = None  # a VAE file's name; None: the sd_vae setting; "Automatic": the checkpoint's own

    def validated(self) -> "Txt2ImgRequest":
        """Return a copy with normalised values, or raise InvalidRequest naming the first bad field."""
        r = Txt2ImgRequest(**{f.name: getattr(self, f.name) for f in fields(self)})
        r.prompt = _text(r.prompt, "prompt")
        r.negative_prompt = _text(r.negative_prompt, "negative_prompt")
        r.sampler, r.scheduler = resolve(r.sampler, r.scheduler)
        r.steps = _integer(r.steps, "steps", 1, 150)
        r.cfg_scale = _number(r.cfg_scale, "cfg_scale", 0.0, 30.0)
        r.distilled_cfg_scale = _number(r.distilled_cfg_scale, "distilled_cfg_scale", 0.0, 30.0)
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
        if r.vae is not None and not isinstance(r.vae, str):
            raise InvalidRequest("vae", f"must be a VAE file's name, got {shown(r.vae)}")
        r.restore_faces = False if r.restore_faces is None else r.restore_faces
        if not isinstance(r.restore_faces, bool):
            raise InvalidRequest("restore_faces", f"must be true or false, got {shown(r.restore_faces)}")
        if not isinstance(r.tiling, bool):
            raise InvalidRequest("tiling", f"must be true or false, got {shown(r.tiling)}")
        r.eta_noise_seed_delta = _integer(r.eta_noise_seed_delta or 0, "eta_noise_seed_delta", 0, MAX_SEED)
        r.forge_additional_modules = _names(r.forge_additional_modules, "forge_additional_modules")
        validate_hires(r, MAX_SIDE, MAX_PIXELS, _integer, _number, _text)
        validate_refiner(r, _number)
        if not isinstance(r.disable_extra_networks, bool):
            raise InvalidRequest("disable_extra_networks", "must be true or false")
        parse_prompt(r.prompt, "prompt")  # a tag we cannot honour is refused here, naming it
        if r.enable_hr and r.hr_prompt:
            parse_prompt(r.hr_prompt, "hr_prompt")
        if r.styles:
            raise InvalidRequest("styles", "styles are applied by the server's styles file; none was given")
        r.styles = None
        _check_schedules(r)
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
    return server_checked(request, context)


def server_checked(request, context):
    """The request (txt2img's or img2img's) after what only the server can check or fill in, before the job waits
    for the device: clip skip against the checkpoint's text encoder, the refiner, the LoRAs the prompt names, the
    VAE file, the checkpoint family's rules, the face restorer."""
    if context.backend is None:
        if request.restore_faces:
            raise InvalidRequest("restore_faces", "face restoration needs the server's models folder")
        return request
    context.backend.check_clip_skip(request.clip_skip, request.checkpoint)
    check_refiner(request, context.backend.manager)
    request = context.backend.with_loras(request)
    request = checked_vae(request, context.backend)
    request = checked_family(request, context.backend)
    return context.backend.with_face_restorer(request, context.job.owner if context.job else None)


def _check_schedules(r: Txt2ImgRequest) -> None:
    """Prompt editing and alternation bounded now, naming the field (modules/generation/prompt_schedule.py)."""
    prompt_schedule(r.prompt, r.steps, field="prompt")
    prompt_schedule(r.negative_prompt, r.steps, field="negative_prompt")
    if r.enable_hr:
        second_steps = r.hr_second_pass_steps or r.steps
        prompt_schedule(r.hr_prompt or r.prompt, second_steps, r.steps,
                        field="hr_prompt" if r.hr_prompt else "prompt")
        prompt_schedule(r.hr_negative_prompt or r.negative_prompt, second_steps, r.steps,
                        field="hr_negative_prompt" if r.hr_negative_prompt else "negative_prompt")


def checked_vae(request, backend):
    """The request with its VAE file found (by name or stem); an unknown one is refused before the job waits."""
    if request.vae in (None, "", "Automatic", "None"):
        return request
    from modules.option_changes import vae_choice

    return replace(request, vae=vae_choice(backend, request.vae))


MAX_MODULES = 8


def checked_family(request, backend):
    """The request (txt2img's or img2img's) with its component files named as listed, after the checkpoint
    family's own rules, checked before the job waits for the device: its sampler list (flow matching for
    SD3/FLUX), its guidance (FLUX: CFG 1, or real CFG above 1), its sides (FLUX: multiples of 16), and what
    does not apply to a transformer (Tiling, a refiner)."""
    _check_family(request, backend)
    if request.forge_additional_modules:  # as listed, so the infotext names the files the same way
        files = backend.manager.component_files
        request.forge_additional_modules = tuple(files.find(n).name for n in request.forge_additional_modules)
    return request


def _check_family(request, backend) -> None:
    from modules.generation.guidance import check_cfg_scale
    from modules.generation.samplers import for_family

    try:
        info = backend.manager.resolve(request.checkpoint)
    except Exception:  # noqa: BLE001 - an unknown or unusable checkpoint is refused where it is loaded, naming it
        return
    if info.architecture is None:
        return
    family = info.architecture.spec
    for_family(request.sampler, family)
    check_cfg_scale(request, family)
    _check_sides(request, family)
    if family.denoiser == "transformer":
        if request.tiling:
            raise InvalidRequest("tiling", f"is not available for {family.label} models: Tiling pads a UNet's "
                                           "convolutions circularly, and their transformer has none; turn it off")
        if request.refiner_checkpoint:
            raise InvalidRequest("refiner_checkpoint", f"a refiner is not available for {family.label} models: "
                                                       "the refiner switch works with UNets (SD 1.x, SD 2.x, SDXL)")


def _check_sides(request, family) -> None:
    """Sides the family's latents can hold: FLUX packs its 8× latents in 2×2 patches (16 pixels)."""
    step = family.size_multiple
    if step == 8:
        return
    width, height = request.output_size
    for field, value in (("width", request.width), ("height", request.height),
                         ("hr_scale" if request.enable_hr else "pad_left", width),
                         ("hr_scale" if request.enable_hr else "pad_top", height)):
        if value % step:
            raise InvalidRequest(field, f"gives a side of {value} pixels; {family.label} models need multiples "
                                        f"of {step}")


def _names(value, field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidRequest(field, "must be a list of file names (models/VAE, models/text_encoder)")
    if len(value) > MAX_MODULES:
        raise InvalidRequest(field, f"lists {len(value)} files; at most {MAX_MODULES}")
    return tuple(dict.fromkeys(v.strip() for v in value))


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
