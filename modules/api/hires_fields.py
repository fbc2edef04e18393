"""txt2img's hires fix fields from A1111's JSON (enable_hr, hr_scale, ...), as Txt2ImgRequest keywords."""
from __future__ import annotations

from modules.capabilities.txt2img.hires import HIRES_FIELDS
from modules.capabilities.txt2img.request import Txt2ImgRequest
from modules.errors import InvalidRequest

DEFAULT = Txt2ImgRequest()
# Hires fix options this server does not have: refused by name when hires fix is on (off, A1111 ignores them).
NOT_AVAILABLE = {
    "hr_checkpoint_name": (("", "Use same checkpoint"), "a second checkpoint for the hires pass is not available"),
}


def hires_fields(body) -> dict:
    """The request's hires values; null ones (A1111 clients send "denoising_strength": null) take our defaults."""
    if body.enable_hr:
        for name, (neutral, missing) in NOT_AVAILABLE.items():
            value = getattr(body, name, None)
            if value is not None and value not in neutral:
                raise InvalidRequest(name, f"{value!r} is not supported: {missing}")
    values = {name: getattr(body, name, None) for name in HIRES_FIELDS}
    return {name: getattr(DEFAULT, name) if value is None else value for name, value in values.items()}
