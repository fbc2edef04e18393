"""The refiner (A1111 ≥ 1.6): a second checkpoint takes over the sampling part-way through, on the same
latents and the same schedule. `refiner_checkpoint` names it; `refiner_switch_at` (0..1, default 0.8) is
where: A1111's way, the switch comes at the first model call whose timestep has done that fraction of the
schedule ((999 - t) / 1000 ≥ switch at), so 1 never switches and 0.5 switches half-way down.

The SDXL refiner (one OpenCLIP-G encoder, aesthetic-score conditioning) is the usual one, but any checkpoint
of the same latent space is allowed, as in A1111 (SD 1.x → SD 1.x); another latent space is refused naming
`refiner_checkpoint`. Both checkpoints are held by the manager for the whole job (manager.use_beside).
With hires fix on, the refiner works in the second pass (A1111's default "Hires fix: which pass to enable
refiner for")."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from modules.errors import InvalidRequest, UserError

FIELDS = ("refiner_checkpoint", "refiner_switch_at")
DEFAULT_SWITCH_AT = 0.8
NONE_NAMES = ("", "none", "None")  # A1111's "no refiner" spellings


def validate_refiner(r, number) -> None:
    """Normalises a request copy's refiner fields in place (`number`: request.py's check)."""
    name = r.refiner_checkpoint
    if name is not None and not isinstance(name, str):
        raise InvalidRequest("refiner_checkpoint", "must be a checkpoint title or name")
    name = (name or "").strip()
    r.refiner_checkpoint = None if name in NONE_NAMES else name
    switch_at = DEFAULT_SWITCH_AT if r.refiner_switch_at is None else r.refiner_switch_at
    r.refiner_switch_at = number(switch_at, "refiner_switch_at", 0.0, 1.0)


def check_refiner(request, manager) -> None:
    """The refiner exists, can run, and shares the first checkpoint's latent space (before the job waits)."""
    if not request.refiner_checkpoint:
        return
    try:
        refiner = manager.resolve(request.refiner_checkpoint)
    except UserError as e:  # not found, or a file that cannot be used
        raise InvalidRequest("refiner_checkpoint", str(e)) from None
    base = manager.resolve(request.checkpoint)
    problem = incompatibility(base, refiner)
    if problem:
        raise InvalidRequest("refiner_checkpoint", problem)


def incompatibility(base, refiner) -> str | None:
    """Why `refiner` (a CheckpointInfo) cannot continue `base`'s sampling, or None."""
    if refiner.architecture is None:
        return f"{refiner.title} cannot be used: {refiner.error or 'architecture unknown'}"
    if base.architecture is not None and base.architecture.inpainting:
        return f"{base.title} is an inpainting checkpoint: its UNet takes the mask too, a refiner's does not"
    if refiner.architecture.inpainting:
        return f"{refiner.title} is an inpainting checkpoint; a refiner must take plain latents"
    if base.architecture is not None and base.architecture.spec.latent != refiner.architecture.spec.latent:
        return (f"{refiner.title} ({refiner.architecture.label}) works in another latent space than "
                f"{base.title} ({base.architecture.label}); pick a refiner of the same family")
    return None


@dataclass
class Refiner:
    """The refiner of one job: its cached checkpoint, where it takes over, and whether it did. `base` is the
    job's own checkpoint and `cache` the manager's: the two denoisers take turns on the device when both do
    not fit in its budget (cache.swap_in)."""
    model: object  # LoadedCheckpoint
    switch_at: float
    base: object = None  # LoadedCheckpoint
    cache: object = None  # ModelCache
    used: bool = False

    def take_over(self) -> None:
        """The refiner on the device (at the switch); the first model's denoiser leaves if need be."""
        if self.cache is not None:
            self.cache.swap_in(self.model, self.base, (self.base.info.architecture.spec.denoiser,))

    def hand_back(self) -> None:
        """The job's own checkpoint whole on the device again (before a run); the refiner's denoiser leaves
        if need be."""
        if self.cache is not None:
            self.cache.swap_in(self.base, self.model, (self.model.info.architecture.spec.denoiser,))

    def infotext(self) -> dict:
        """A1111's keys, written when the switch happened (PNG Info reads them back)."""
        if not self.used:
            return {}
        return {"Refiner": f"{self.model.info.model_name} [{self.model.info.shorthash}]",
                "Refiner switch at": f"{self.switch_at:g}"}


@contextmanager
def refiner_for(request, model, manager) -> Iterator[Refiner | None]:
    """The job's refiner, loaded (or found in the cache) and held beside `model` while inside; None without one."""
    if not getattr(request, "refiner_checkpoint", None) or manager is None:
        yield None
        return
    info = manager.resolve(request.refiner_checkpoint)
    problem = incompatibility(model.info, info)  # checked again: the folders may have changed since validation
    if problem:
        raise InvalidRequest("refiner_checkpoint", problem)
    if info.path == model.info.path:  # A1111: refining with the same checkpoint is no switch at all
        yield None
        return
    with manager.use_beside(info.title) as refiner:
        if refiner.info.architecture.spec.pipeline_name("img2img") is None:
            raise UserError(f"{refiner.info.title}: {refiner.info.architecture.label} models cannot refine")
        yield Refiner(refiner, request.refiner_switch_at, base=model, cache=manager.cache)
