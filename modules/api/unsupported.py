"""A1111 request fields that would change the picture and that this server does not implement: a 422 naming
the field, never a normal-looking answer that silently differs from what the client asked for.

A field at its neutral value (what A1111 itself does nothing with: `s_churn: 0`, `subseed_strength:
0` ...) is accepted, so clients that send every field keep working. Implementing one of these features is
deleting its line here (and honouring the field)."""
from __future__ import annotations

import math
from collections.abc import Callable

from pydantic import BaseModel

from modules.api.errors import ApiError
from modules.user_values import shown


def _off(value) -> bool:
    return value is None or value is False or value == 0


def _zero(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0)


def _one(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 1)


def _empty(value) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _no_tmax(value) -> bool:  # A1111: 0 or null means "no upper limit"
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and (value == 0 or math.isinf(value)))


def _true(value) -> bool:
    return value is None or value is True


# field: (is its value neutral?, what is missing). One line per feature: delete it when the feature lands.
UNSUPPORTED: dict[str, tuple[Callable[[object], bool], str]] = {
    "s_churn": (_zero, "sampler noise settings (s_churn) are not available"),
    "s_tmin": (_zero, "sampler noise settings (s_tmin) are not available"),
    "s_tmax": (_no_tmax, "sampler noise settings (s_tmax) are not available"),
    "s_noise": (_one, "sampler noise settings (s_noise) are not available"),
    "s_min_uncond": (_zero, "skipping the negative prompt at low sigma (s_min_uncond) is not available"),
    "firstpass_image": (_empty, "a first-pass image for hires fix is not available"),
    "infotext": (_empty, "filling the request from an infotext is not available: send the fields themselves"),
    "initial_noise_multiplier": (_one, "an initial noise multiplier is not available"),
    "latent_mask": (_empty, "a separate latent mask is not available: send `mask`"),
    "mask_round": (_true, "an unrounded latent mask is not available"),
    "ddim_discretize": (lambda v: v in (None, "", "uniform"), "another DDIM discretization is not available"),
    "image_cfg_scale": (lambda v: True, ""),  # instruct-pix2pix only: A1111 ignores it for other models too
}

# Samplers whose A1111 (k-diffusion) function takes `eta`, with A1111's default; and what eta 0 makes of the
# ancestral ones (no added noise: exactly the plain sampler).
ETA_DEFAULTS = {"Euler a": 1.0, "DPM++ SDE": 1.0, "DPM++ 2M SDE": 1.0, "DPM++ 2M SDE Heun": 1.0,
                "DDIM": 0.0}
WITHOUT_NOISE = {"Euler a": "Euler"}


def refuse_unsupported(body: BaseModel) -> None:
    """A 422 naming the first field of `body` (declared or extra) that asks for a missing feature."""
    values = {**(body.model_extra or {}), **{name: getattr(body, name) for name in type(body).model_fields}}
    for name, (neutral, missing) in UNSUPPORTED.items():
        if name in values and not neutral(values[name]):
            raise ApiError(422, name, f"{shown(values[name])} is not supported: {missing}")


def sampler_for_eta(sampler: str, eta, field: str = "eta") -> str:
    """The sampler that gives what A1111 gives for `sampler` with `eta` (null: the sampler's default).
    Samplers without eta ignore it, as in A1111; eta 0 turns an ancestral sampler into its plain one."""
    if eta is None or sampler not in ETA_DEFAULTS:
        return sampler
    if isinstance(eta, bool) or not isinstance(eta, (int, float)):
        raise ApiError(422, field, f"must be a number, got {shown(eta)}")
    if eta == ETA_DEFAULTS[sampler]:
        return sampler
    if eta == 0 and sampler in WITHOUT_NOISE:
        return WITHOUT_NOISE[sampler]
    raise ApiError(422, field, f"{shown(eta)} with sampler {sampler!r} is not supported: only "
                               f"{ETA_DEFAULTS[sampler]:g} (A1111's default)"
                               + (" or 0" if sampler in WITHOUT_NOISE else ""))
