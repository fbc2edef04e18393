"""A1111's samplers and schedule types, on diffusers' schedulers (diffusers' own A1111 table).

A1111 ≥ 1.9 names a sampler ("DPM++ 2M") and a schedule type ("Karras") apart; the older joined names
("DPM++ 2M Karras") are aliases. Only the model's noise schedule (betas, prediction type) comes from the
checkpoint's scheduler config; everything about *how* to sample is set here, explicitly, so a config
that ships `clip_sample: true` or `timestep_spacing: "leading"` cannot change the picture (it did: DDIM
built over the built-in model's config clipped x0 and drew noise).

Not offered, because diffusers 0.42 has no faithful equivalent: DPM++ 2S a (no ancestral single-step
solver), DPM++ 3M SDE (its third-order update has no SDE branch), Restart, DPM fast, DPM adaptive,
and the schedule types Polyexponential, KL Optimal, Normal and DDIM. Not offered because they draw the
wrong picture on the built-in model at 20 steps and CFG 7 (built as A1111 does): LMS, DPM2 a, and Beta
with every sampler but Euler.

PLMS and UniPC extrapolate from the last steps' predictions, and CFG 7 multiplies how fast the model's
guidance direction changes with the latent: on the first built-in model that made them oscillate (a magenta
circle for PLMS, in A1111's own code too). The built-in model is fine-tuned with a term that keeps that
direction smooth (modules/zoo/train/guidance.py), and they draw the prompt; PLMS stays the least reliable
on it (the README has the figures).

Each sampler is built from the checkpoint's scheduler config, so betas and prediction type
(epsilon or v) come from the model, and only the sampling algorithm changes.

Flow-matching models (SD3, FLUX: a family's sampler_kind "flow") have their own list under the same
names: Euler and Heun on diffusers' FlowMatch schedulers, DPM++ 2M and UniPC on the multistep solvers with
flow sigmas. Each keeps the model's `shift` (and FLUX's resolution-dependent shift)."""
from __future__ import annotations

import copy
import inspect
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from modules.errors import InvalidRequest
from modules.user_values import shown

AUTOMATIC = "Automatic"

# What describes the model (how it was trained), taken from the checkpoint; nothing else is.
MODEL_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
              "prediction_type", "rescale_betas_zero_snr")

# Every scheduler starts from these; a class takes the ones its constructor knows.
BASE_OPTIONS = {
    "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1, "thresholding": False,
    "use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False,
    "use_flow_sigmas": False, "use_lu_lambdas": False, "final_sigmas_type": "zero",
    "interpolation_type": "linear", "timestep_type": "discrete", "lower_order_final": True,
    "euler_at_final": False, "timestep_spacing": "linspace", "sample_max_value": 1.0,
}

# Align Your Steps' sigmas (NVIDIA's published lists, as A1111 uses them), interpolated log-linearly.
AYS_SD = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
AYS_SDXL = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029]


PROTOTYPES_KEPT = 64
"""Schedulers kept built (one per model noise schedule, sampler and schedule type a job asked for): a job gets a
copy of one, ~0.15 ms, where building it from its config (diffusers' signature checks and config registration)
takes ~1 ms."""
_prototypes: OrderedDict[tuple, object] = OrderedDict()
_prototypes_lock = threading.Lock()


def fresh_scheduler(cls, config: dict, **options):
    """A new `cls.from_config(config, **options)`: a deep copy of one built before from the same values, never
    itself used. A job's scheduler keeps its run's state (timesteps, step index, a multistep solver's past model
    outputs); the copy starts from the prototype's, which no run has touched."""
    try:
        key = (cls, _frozen(config), _frozen(options))
        hash(key)
    except TypeError:  # a value we cannot compare by content: built anew
        return cls.from_config(config, **options)
    with _prototypes_lock:
        prototype = _prototypes.get(key)
        if prototype is not None:
            _prototypes.move_to_end(key)
    if prototype is None:
        prototype = cls.from_config(config, **options)
        with _prototypes_lock:
            _prototypes[key] = prototype
            while len(_prototypes) > PROTOTYPES_KEPT:
                _prototypes.popitem(last=False)
    return copy.deepcopy(prototype)


def _frozen(value):
    """`value` (a config's) as a hashable value compared by content: lists and arrays (trained betas) as tuples."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return type(value).__name__, tuple(_frozen(v) for v in value)
    if isinstance(value, np.ndarray):
        return "ndarray", str(value.dtype), value.shape, value.tobytes()
    return type(value).__name__, value  # the type too: True == 1 == 1.0 would give one key


@dataclass(frozen=True)
class ScheduleType:
    name: str  # A1111's key ("karras"), its API `scheduler` value
    label: str  # what the dropdown and the infotext show ("Karras")
    options: dict = field(default_factory=dict)  # scheduler constructor options
    timesteps: bool = False  # an explicit timestep list (schedulers whose set_timesteps takes one)
    default_rho: float = -1.0


SCHEDULE_TYPES: list[ScheduleType] = [
    ScheduleType("automatic", AUTOMATIC),
    ScheduleType("uniform", "Uniform", {"timestep_spacing": "linspace"}),
    ScheduleType("karras", "Karras", {"use_karras_sigmas": True}, default_rho=7.0),
    ScheduleType("exponential", "Exponential", {"use_exponential_sigmas": True}),
    ScheduleType("sgm_uniform", "SGM Uniform", {"timestep_spacing": "trailing"}),
    ScheduleType("simple", "Simple", timesteps=True),
    ScheduleType("beta", "Beta", {"use_beta_sigmas": True}),
    ScheduleType("align_your_steps", "Align Your Steps", timesteps=True),
]
_SCHEDULES = {key: s for s in SCHEDULE_TYPES for key in (s.name, s.label.lower(), s.label.replace(" ", "").lower())}



@dataclass(frozen=True)
class Sampler:
    name: str  # A1111's name
    scheduler_class: str  # a diffusers scheduler class name
    options: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    automatic: str = "Uniform"  # what "Automatic" means for it (A1111's sampler option `scheduler`)
    schedules: tuple[str, ...] = ()  # the schedule types it takes besides Automatic

    def build(self, scheduler_config: dict, schedule: str = AUTOMATIC):
        """The diffusers scheduler: the checkpoint's noise schedule, everything else explicit."""
        import diffusers

        cls = getattr(diffusers, self.scheduler_class)
        accepted = inspect.signature(cls.__init__).parameters
        schedule_type = _effective(self, schedule)
        options = {**BASE_OPTIONS, **(schedule_type.options if schedule_type else {}), **self.options}
        model = {k: scheduler_config[k] for k in MODEL_KEYS if k in scheduler_config}
        return fresh_scheduler(cls, {}, **model, **{k: v for k, v in options.items() if k in accepted})


# Which schedule types each sampler lists: those with which it draws the prompt on the built-in model
# (tests/test_samplers_builtin.py renders every pair listed here; a pair that cannot pass is left out).
ALL = ("Uniform", "SGM Uniform", "Karras", "Exponential", "Beta", "Simple", "Align Your Steps")
NO_BETA = tuple(s for s in ALL if s != "Beta")
NO_BETA_NO_AYS = tuple(s for s in NO_BETA if s != "Align Your Steps")

SAMPLERS: list[Sampler] = [
    Sampler("DPM++ 2M", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2},
            ("k_dpmpp_2m", "DPM++ 2M Karras"), "Karras", NO_BETA),
    Sampler("DPM++ SDE", "DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2},
            ("k_dpmpp_sde", "DPM++ SDE Karras"), "Karras", NO_BETA),
    Sampler("DPM++ 2M SDE", "DPMSolverMultistepScheduler",
            {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "midpoint"},
            ("k_dpmpp_2m_sde", "DPM++ 2M SDE Karras", "DPM++ 2M SDE Exponential"), "Exponential", NO_BETA_NO_AYS),
    Sampler("DPM++ 2M SDE Heun", "DPMSolverMultistepScheduler",
            {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "heun"},
            ("k_dpmpp_2m_sde_heun", "DPM++ 2M SDE Heun Karras", "DPM++ 2M SDE Heun Exponential"),
            "Exponential", NO_BETA_NO_AYS),
    Sampler("Euler a", "EulerAncestralDiscreteScheduler", {}, ("k_euler_a", "k_euler_ancestral", "euler_ancestral"),
            "Uniform", ("Uniform", "SGM Uniform")),  # diffusers' Euler a takes no sigma schedule
    Sampler("Euler", "EulerDiscreteScheduler", {}, ("k_euler",), "Uniform", ALL),
    Sampler("Heun", "HeunDiscreteScheduler", {}, ("k_heun",), "Uniform", NO_BETA),
    # KDPM2's set_timesteps takes no timestep list: no Simple or Align Your Steps.
    Sampler("DPM2", "KDPM2DiscreteScheduler", {}, ("k_dpm_2", "DPM2 Karras"), "Karras",
            ("Uniform", "SGM Uniform", "Karras", "Exponential")),
    # A1111's DDIM: the DDPM timesteps 1, 1 + 1000/n, ... ("leading" + steps_offset 1), no schedule type.
    Sampler("DDIM", "DDIMScheduler", {"timestep_spacing": "leading"}, ("ddim",), "Uniform"),
    # A1111's PLMS: the same DDPM timesteps, linear multistep without Runge-Kutta warm-up steps.
    Sampler("PLMS", "PNDMScheduler", {"timestep_spacing": "leading", "skip_prk_steps": True}, ("plms",), "Uniform"),
    # A1111's UniPC defaults: variant bh1, order 3, uniform in time, lower order at the end; like A1111's it
    # stops at the last timestep (bh1 stepping to sigma 0 gives NaN in diffusers 0.42). No schedule types:
    # the same name on flow-matching families takes none either.
    Sampler("UniPC", "UniPCMultistepScheduler", {"solver_type": "bh1", "solver_order": 3,
                                                 "final_sigmas_type": "sigma_min"}, ("unipc",), "Uniform"),
]

class FlowSampler(Sampler):
    """A sampler for flow-matching models, built from a FlowMatchEulerDiscreteScheduler config: the solvers
    that are not FlowMatch schedulers get its shift as flow_shift (and its dynamic shifting, FLUX dev's)."""

    def build(self, scheduler_config: dict):
        import diffusers

        cls = getattr(diffusers, self.scheduler_class)
        if self.scheduler_class.startswith("FlowMatch"):
            return fresh_scheduler(cls, scheduler_config, **self.options)
        solver = {k: v for k, v in scheduler_config.items() if k in ("num_train_timesteps", "use_dynamic_shifting")}
        from modules.compat import with_scale_noise

        return with_scale_noise(fresh_scheduler(cls, solver, flow_shift=float(scheduler_config.get("shift", 1.0)),
                                                use_flow_sigmas=True, prediction_type="flow_prediction",
                                                **self.options))


FLOW_SAMPLERS: list[Sampler] = [
    FlowSampler("Euler", "FlowMatchEulerDiscreteScheduler", aliases=("k_euler",)),
    FlowSampler("Heun", "FlowMatchHeunDiscreteScheduler", aliases=("k_heun",)),
    FlowSampler("DPM++ 2M", "DPMSolverMultistepScheduler", aliases=("k_dpmpp_2m",)),
    FlowSampler("UniPC", "UniPCMultistepScheduler"),
]

_BY_NAME = {s.name.lower(): s for s in SAMPLERS}
_BY_NAME.update({alias.lower(): s for s in SAMPLERS for alias in s.aliases})
_FLOW_ONLY = {s.name.lower(): s for s in FLOW_SAMPLERS if s.name.lower() not in _BY_NAME}


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


def schedule_labels() -> list[str]:
    return [s.label for s in SCHEDULE_TYPES]


def schedule_labels_for(sampler: str) -> list[str]:
    """The schedule types a sampler takes, Automatic first (the UI's dropdown)."""
    return [AUTOMATIC, *find_sampler(sampler).schedules]


def find_sampler(name: str) -> Sampler:
    if name is not None and not isinstance(name, str):
        raise InvalidRequest("sampler", f"must be a sampler name, got {shown(name)}")
    key = (name or "").strip().lower()
    if key in _BY_NAME:
        return _BY_NAME[key]
    if key in _FLOW_ONLY:  # a sampler only flow-matching families offer (UniPC): the family's list decides
        return _FLOW_ONLY[key]
    raise InvalidRequest("sampler", f"unknown sampler {shown(name)}; choose one of: {', '.join(sampler_names())}")


def find_schedule(name) -> ScheduleType:
    if name is None or (isinstance(name, str) and not name.strip()):
        return SCHEDULE_TYPES[0]
    if not isinstance(name, str) or name.strip().lower() not in _SCHEDULES:
        raise InvalidRequest("scheduler", f"unknown schedule type {shown(name)}; choose one of: "
                                          f"{', '.join(schedule_labels())}")
    return _SCHEDULES[name.strip().lower()]


def resolve(sampler: str, schedule: str | None = None) -> tuple[str, str]:
    """(sampler name, schedule label) as a job runs them, from what a user or client wrote. An old joined
    name ("DPM++ 2M Karras", A1111 < 1.9) gives its schedule when none is chosen; a schedule the sampler
    cannot take is an error naming `scheduler`; the sampler's own default becomes Automatic (as A1111 does)."""
    found, named = split_name(sampler)
    chosen = find_schedule(schedule)
    if chosen.label == AUTOMATIC and named is not None:
        chosen = named
    if chosen.label == found.automatic:
        chosen = SCHEDULE_TYPES[0]
    if chosen.label != AUTOMATIC and chosen.label not in found.schedules:
        takes = ", ".join([AUTOMATIC, *found.schedules])
        raise InvalidRequest("scheduler", f"{found.name} does not take the schedule type {chosen.label!r}; "
                                          f"it takes: {takes}")
    return found.name, chosen.label


def split_name(name) -> tuple[Sampler, ScheduleType | None]:
    """The sampler and the schedule type a name joins ("Heun Karras"), as A1111's get_sampler_and_scheduler."""
    if isinstance(name, str):
        key = name.strip().lower()
        for label in sorted(_SCHEDULES, key=len, reverse=True):
            if key.endswith(" " + label) and key[:-len(label) - 1].strip() in _BY_NAME:
                return _BY_NAME[key[:-len(label) - 1].strip()], _SCHEDULES[label]
    return find_sampler(name), None


def infotext_schedule(sampler: str, schedule: str) -> str | None:
    """A1111's "Schedule type" infotext value: the schedule in effect, none for a plain uniform one."""
    found = find_sampler(sampler)
    effective = found.automatic if schedule == AUTOMATIC else schedule
    if schedule == AUTOMATIC and (effective == "Uniform" or not found.schedules):
        return None
    return effective


def _effective(sampler: Sampler, schedule: str) -> ScheduleType | None:
    label = sampler.automatic if schedule in (None, "", AUTOMATIC) else schedule
    return _SCHEDULES.get(label.lower())


def build_sampler(sampler: str, schedule: str, scheduler_config: dict, steps: int,
                  family=None) -> tuple[object, dict]:
    """(diffusers scheduler, extra pipeline arguments) for a job on `family`'s models: a schedule given as an
    explicit timestep list (Simple, Align Your Steps) is the pipeline's `timesteps` argument. Flow-matching
    families (SD3, FLUX) have their own samplers and the model's own shifted schedule only."""
    if family is not None and family.sampler_kind == "flow":
        if schedule not in (None, "", AUTOMATIC):
            raise InvalidRequest("scheduler", f"{family.label} models sample on their own shifted schedule; "
                                              f"choose {AUTOMATIC}")
        return for_family(sampler, family).build(scheduler_config), {}
    if family is not None:
        for_family(sampler, family)  # a family that offers fewer samplers refuses the others, naming the field
    sdxl = family is not None and family.name.startswith("sdxl")
    found = find_sampler(sampler)
    scheduler = found.build(scheduler_config, schedule)
    schedule_type = _effective(found, schedule)
    if schedule_type is None or not schedule_type.timesteps:
        return scheduler, {}
    sigmas = np.sqrt((1 - scheduler.alphas_cumprod.numpy()) / scheduler.alphas_cumprod.numpy())
    if schedule_type.label == "Simple":
        # A1111 (after ComfyUI): every (len/n)-th of the model's sigmas, from the noisiest.
        stride = len(sigmas) / steps
        timesteps = [len(sigmas) - 1 - int(i * stride) for i in range(steps)]
    else:
        timesteps = [_sigma_to_t(s, sigmas) for s in _ays_sigmas(AYS_SDXL if sdxl else AYS_SD, steps)]
    if found.scheduler_class != "EulerDiscreteScheduler":  # the others round timesteps to whole numbers
        timesteps = sorted({int(round(t)) for t in timesteps}, reverse=True)
    return scheduler, {"timesteps": [float(t) for t in timesteps]}


def _ays_sigmas(reference: list[float], steps: int) -> list[float]:
    if steps == len(reference):
        return list(reference)
    xs = np.linspace(0, 1, len(reference))
    ys = np.log(reference[::-1])
    return list(np.exp(np.interp(np.linspace(0, 1, steps), xs, ys))[::-1])


def _sigma_to_t(sigma: float, sigmas: np.ndarray) -> float:
    """The (fractional) training timestep of `sigma`: log-sigma interpolated, as k-diffusion does."""
    log_sigmas = np.log(sigmas)
    return float(np.interp(np.log(max(sigma, sigmas[0])), log_sigmas, np.arange(len(sigmas))))
