"""A1111 sampler names mapped onto diffusers schedulers (as in diffusers' own A1111 table).

Each sampler is built from the checkpoint's scheduler config, so betas and prediction type
(epsilon or v) come from the model, and only the sampling algorithm changes.

Flow-matching models (SD3, FLUX: a family's sampler_kind "flow") have their own list under the same
names: Euler and Heun on diffusers' FlowMatch schedulers, DPM++ 2M and UniPC on the multistep solvers with
flow sigmas. Each keeps the model's `shift` (and FLUX's resolution-dependent shift)."""
from __future__ import annotations

from dataclasses import dataclass, field

from modules.errors import InvalidRequest
from modules.user_values import shown


@dataclass(frozen=True)
class Sampler:
    name: str  # A1111's name
    scheduler_class: str  # a diffusers scheduler class name
    options: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    def build(self, scheduler_config: dict):
        import diffusers

        cls = getattr(diffusers, self.scheduler_class)
        return cls.from_config(scheduler_config, **self.options)


KARRAS = {"use_karras_sigmas": True}

SAMPLERS: list[Sampler] = [
    Sampler("Euler a", "EulerAncestralDiscreteScheduler", aliases=("k_euler_a", "euler_ancestral")),
    Sampler("Euler", "EulerDiscreteScheduler", aliases=("k_euler",)),
    Sampler("LMS", "LMSDiscreteScheduler", aliases=("k_lms",)),
    Sampler("LMS Karras", "LMSDiscreteScheduler", KARRAS),
    Sampler("Heun", "HeunDiscreteScheduler", aliases=("k_heun",)),
    Sampler("DPM2", "KDPM2DiscreteScheduler", aliases=("k_dpm_2",)),
    Sampler("DPM2 Karras", "KDPM2DiscreteScheduler", KARRAS),
    Sampler("DPM2 a", "KDPM2AncestralDiscreteScheduler", aliases=("k_dpm_2_a",)),
    Sampler("DPM2 a Karras", "KDPM2AncestralDiscreteScheduler", KARRAS),
    Sampler("DPM++ 2M", "DPMSolverMultistepScheduler", aliases=("k_dpmpp_2m",)),
    Sampler("DPM++ 2M Karras", "DPMSolverMultistepScheduler", KARRAS),
    Sampler("DPM++ 2M SDE", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    Sampler("DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", **KARRAS}),
    Sampler("DPM++ SDE", "DPMSolverSinglestepScheduler"),
    Sampler("DPM++ SDE Karras", "DPMSolverSinglestepScheduler", KARRAS),
    Sampler("DDIM", "DDIMScheduler", aliases=("ddim",)),
    Sampler("PLMS", "PNDMScheduler", {"skip_prk_steps": True}, aliases=("plms",)),
    Sampler("UniPC", "UniPCMultistepScheduler"),
    Sampler("LCM", "LCMScheduler"),
]

class FlowSampler(Sampler):
    """A sampler for flow-matching models, built from a FlowMatchEulerDiscreteScheduler config: the solvers
    that are not FlowMatch schedulers get its shift as flow_shift (and its dynamic shifting, FLUX dev's)."""

    def build(self, scheduler_config: dict):
        import diffusers

        cls = getattr(diffusers, self.scheduler_class)
        if self.scheduler_class.startswith("FlowMatch"):
            return cls.from_config(scheduler_config, **self.options)
        solver = {k: v for k, v in scheduler_config.items() if k in ("num_train_timesteps", "use_dynamic_shifting")}
        return cls.from_config(solver, flow_shift=float(scheduler_config.get("shift", 1.0)), use_flow_sigmas=True,
                               prediction_type="flow_prediction", **self.options)


FLOW_SAMPLERS: list[Sampler] = [
    FlowSampler("Euler", "FlowMatchEulerDiscreteScheduler", aliases=("k_euler",)),
    FlowSampler("Heun", "FlowMatchHeunDiscreteScheduler", aliases=("k_heun",)),
    FlowSampler("DPM++ 2M", "DPMSolverMultistepScheduler", aliases=("k_dpmpp_2m",)),
    FlowSampler("UniPC", "UniPCMultistepScheduler"),
]

_BY_NAME = {s.name.lower(): s for s in SAMPLERS}
_BY_NAME.update({alias.lower(): s for s in SAMPLERS for alias in s.aliases})

SCHEDULE_TYPES = {"automatic": "", "karras": " Karras"}  # A1111 ≥1.9 splits "Karras" into "Schedule type"


def sampler_names(family=None) -> list[str]:
    """Every sampler's name; for a family (modules/models/families), the ones it offers."""
    if family is None:
        return [s.name for s in SAMPLERS]
    listed = FLOW_SAMPLERS if family.sampler_kind == "flow" else SAMPLERS
    return [s.name for s in listed if not family.sampler_names or s.name in family.sampler_names]


def for_family(name: str, family) -> Sampler:
    """The sampler `name` (an already validated name) as `family`'s models run it, or InvalidRequest naming
    the field with the family's own list."""
    offered = sampler_names(family)
    wanted = find_sampler(name).name
    if wanted not in offered:
        raise InvalidRequest("sampler", f"{shown(name)} does not work with {family.label} models; choose one of: "
                                        f"{', '.join(offered)}")
    listed = FLOW_SAMPLERS if family.sampler_kind == "flow" else SAMPLERS
    return next(s for s in listed if s.name == wanted)


def find_sampler(name: str, schedule_type: str | None = None) -> Sampler:
    if name is not None and not isinstance(name, str):
        raise InvalidRequest("sampler", f"must be a sampler name, got {shown(name)}")
    key = (name or "").strip().lower()
    if isinstance(schedule_type, str) and schedule_type.strip().lower() in SCHEDULE_TYPES:
        with_schedule = key + SCHEDULE_TYPES[schedule_type.strip().lower()].lower()
        if with_schedule in _BY_NAME:
            return _BY_NAME[with_schedule]
    if key in _BY_NAME:
        return _BY_NAME[key]
    raise InvalidRequest("sampler", f"unknown sampler {shown(name)}; choose one of: {', '.join(sampler_names())}")
