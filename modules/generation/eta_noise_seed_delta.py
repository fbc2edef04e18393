"""A1111's "Eta noise seed delta" (ENSD): the noise a stochastic sampler adds at each step comes from
seed + delta instead of the seed, while the starting noise still comes from the seed. It only matters to
reproduce pictures made with it in A1111 (whose NovelAI-era users set 31337)."""
from __future__ import annotations

import functools

import torch


def uses_step_noise(sampler_name: str) -> bool:
    """Samplers that draw new noise at each step (ancestral and SDE ones): those ENSD changes."""
    name = sampler_name.removesuffix(" Karras")
    return name.endswith(" a") or "SDE" in name or name in ("LCM", "Restart")


def reseed_at_first_step(scheduler, generators: list[torch.Generator], seeds: list[int], delta: int) -> None:
    """Re-seed the job's `generators` with seed + `delta` just before the sampler's first step, after the
    starting noise is drawn (as A1111's ImageRNG does). The scheduler is this job's own."""
    if not delta:
        return
    step = scheduler.step
    state = {"first": True}

    @functools.wraps(step)  # the pipeline reads step's signature to pass it the generators
    def step_with_delta(*args, **kwargs):
        if state["first"]:
            state["first"] = False
            for generator, seed in zip(generators, seeds):
                generator.manual_seed(seed + delta)
        return step(*args, **kwargs)

    scheduler.step = step_with_delta


def infotext_value(sampler_name: str, delta: int) -> int | None:
    """What the infotext records: A1111 writes ENSD only for samplers it changes."""
    return delta if delta and uses_step_noise(sampler_name) else None
