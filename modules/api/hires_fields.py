"""txt2img's hires fix fields from A1111's JSON (enable_hr, hr_scale, ...), as Txt2ImgRequest keywords."""
from __future__ import annotations

from modules.capabilities.txt2img.request import Txt2ImgRequest

DEFAULT = Txt2ImgRequest()


def hires_fields(body) -> dict:
    """The request's hires values; null ones (A1111 clients send "denoising_strength": null) take our defaults."""
    values = {name: getattr(body, name) for name in (
        "enable_hr", "hr_scale", "hr_resize_x", "hr_resize_y", "hr_upscaler", "hr_second_pass_steps",
        "denoising_strength", "hr_sampler_name", "hr_prompt", "hr_negative_prompt")}
    return {name: getattr(DEFAULT, name) if value is None else value for name, value in values.items()}
