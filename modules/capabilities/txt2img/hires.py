"""Hires fix (A1111's names): after the first pass, upscale — the latents with torch's interpolation (the
"Latent" modes) or the decoded images with an image upscaler — and run an img2img pass over the result at
the larger size, inside the same job and the same hold on the device."""
from __future__ import annotations

from dataclasses import replace

from modules.errors import InvalidRequest
from modules.generation.samplers import AUTOMATIC, infotext_schedule, resolve, schedule_labels_for, split_name
from modules.upscalers import LANCZOS, LATENT_MODES, NEAREST, NONE, upscaler_names

# Txt2ImgRequest's hires fix fields (A1111's API names).
HIRES_FIELDS = ("enable_hr", "hr_scale", "hr_resize_x", "hr_resize_y", "hr_upscaler", "hr_second_pass_steps",
                "denoising_strength", "hr_sampler_name", "hr_scheduler", "hr_prompt", "hr_negative_prompt")
SAME_SAMPLER = "Use same sampler"  # A1111's choice for hr_sampler_name
SAME_SCHEDULER = "Use same scheduler"  # A1111's choice for hr_scheduler
BUILTIN = (NONE, LANCZOS, NEAREST)


def upscaler_choices(manager=None) -> list[str]:
    """Hires fix's upscalers: the latent modes, then the image upscalers (model files need the manager)."""
    return [*LATENT_MODES, *(upscaler_names(manager) if manager is not None else BUILTIN)]


def check_upscaler(request, manager) -> None:
    """A model upscaler named by the request exists (validated() knows only the built-in names)."""
    if request.enable_hr and request.hr_upscaler not in (*LATENT_MODES, *BUILTIN):
        choices = upscaler_choices(manager)
        if request.hr_upscaler not in choices:
            raise InvalidRequest("hr_upscaler", f"{request.hr_upscaler!r} is not an upscaler; use one of: "
                                                f"{', '.join(choices)}")


def target_size(request) -> tuple[int, int]:
    """The second pass's size: hr_resize_x/y when given (one of them: the other keeps the aspect ratio),
    else width and height × hr_scale; rounded down to a multiple of 8 (the latents' grid)."""
    x, y = request.hr_resize_x, request.hr_resize_y
    if x and not y:
        y = x * request.height / request.width
    elif y and not x:
        x = y * request.width / request.height
    elif not x and not y:
        x, y = request.width * request.hr_scale, request.height * request.hr_scale
    return max(8, int(x) // 8 * 8), max(8, int(y) // 8 * 8)


def validate_hires(r, max_side: int, max_pixels: int, integer, number, text) -> None:
    """Checks the hires fields of a Txt2ImgRequest copy `r` in place (integer/number/text: request.py's checks)."""
    if not isinstance(r.enable_hr, bool):
        raise InvalidRequest("enable_hr", "must be true or false")
    r.hr_scale = number(r.hr_scale, "hr_scale", 1.0, 8.0)
    r.hr_resize_x = integer(r.hr_resize_x, "hr_resize_x", 0, max_side)
    r.hr_resize_y = integer(r.hr_resize_y, "hr_resize_y", 0, max_side)
    r.hr_second_pass_steps = integer(r.hr_second_pass_steps, "hr_second_pass_steps", 0, 150)
    r.denoising_strength = number(r.denoising_strength, "denoising_strength", 0.0, 1.0)
    r.hr_prompt = text(r.hr_prompt, "hr_prompt")
    r.hr_negative_prompt = text(r.hr_negative_prompt, "hr_negative_prompt")
    sampler = (r.hr_sampler_name or "").strip() if isinstance(r.hr_sampler_name, str) else r.hr_sampler_name
    joined = None  # the schedule an old joined name gives ("DPM++ 2M Karras", A1111 < 1.9)
    if sampler in ("", None, SAME_SAMPLER):
        r.hr_sampler_name = ""
    else:
        try:
            found, joined = split_name(sampler)
        except InvalidRequest as e:
            raise InvalidRequest("hr_sampler_name", e.message) from None
        r.hr_sampler_name = found.name
    _validate_hires_schedule(r, joined)
    if not r.enable_hr:
        return
    if not isinstance(r.hr_upscaler, (str, type(None))):
        raise InvalidRequest("hr_upscaler", "must be an upscaler's name (GET /sdapi/v1/upscalers, "
                                            "/sdapi/v1/latent-upscale-modes)")
    upscaler = (r.hr_upscaler or "Latent").strip()
    names = {n.lower(): n for n in upscaler_choices()}
    r.hr_upscaler = names.get(upscaler.lower(), upscaler)  # a model file's name: check_upscaler, with the manager
    width, height = target_size(r)
    field = "hr_resize_x" if r.hr_resize_x or r.hr_resize_y else "hr_scale"
    if max(width, height) > max_side or width * height > max_pixels:
        raise InvalidRequest(field, f"the hires fix size {width}x{height} is over the limit of {max_side} per side "
                                    f"and {max_pixels} pixels")


def _validate_hires_schedule(r, joined) -> None:
    """hr_scheduler: "" (A1111's "Use same scheduler") or a schedule type the hires sampler takes."""
    schedule = r.hr_scheduler.strip() if isinstance(r.hr_scheduler, str) else r.hr_scheduler
    if schedule in ("", None, SAME_SCHEDULER):
        if joined is None:
            r.hr_scheduler = ""
            return
        schedule = joined.label
    try:
        r.hr_scheduler = resolve(r.hr_sampler_name or r.sampler, schedule)[1]
    except InvalidRequest as e:
        raise InvalidRequest("hr_scheduler", e.message) from None


def hires_schedule(request) -> str:
    """The second pass's schedule type: hr_scheduler when given; else A1111's "Use same scheduler", the first
    pass's schedule type where the hires sampler takes it, else Automatic."""
    if request.hr_scheduler:
        return request.hr_scheduler
    sampler = request.hr_sampler_name or request.sampler
    return request.scheduler if request.scheduler in schedule_labels_for(sampler) else AUTOMATIC


def _hires_schedule_infotext(request) -> str | None:
    """A1111's "Hires schedule type": written when the second pass ran another schedule than "Use same
    scheduler" gives (the label in effect; Automatic where that is a plain uniform one)."""
    if not request.hr_scheduler:
        return None
    if request.hr_scheduler == hires_schedule(replace(request, hr_scheduler="")):
        return None
    sampler = request.hr_sampler_name or request.sampler
    return infotext_schedule(sampler, request.hr_scheduler) or AUTOMATIC


def hires_infotext(request) -> dict:
    """A1111's infotext fields for the second pass (PNG Info parses them back)."""
    if not request.enable_hr:
        return {}
    resized = request.hr_resize_x or request.hr_resize_y
    width, height = target_size(request)
    return {
        "Denoising strength": f"{request.denoising_strength:g}",
        "Hires upscale": None if resized else f"{request.hr_scale:g}",
        "Hires resize": f"{width}x{height}" if resized else None,
        "Hires steps": request.hr_second_pass_steps or None,
        "Hires upscaler": request.hr_upscaler,
        "Hires sampler": request.hr_sampler_name or None,
        "Hires schedule type": _hires_schedule_infotext(request),
        "Hires prompt": request.hr_prompt or None,
        "Hires negative prompt": request.hr_negative_prompt or None,
    }
