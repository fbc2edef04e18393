"""The switch to the refiner inside one pipeline run, A1111's way: the sampler, its schedule and the latents
go on; only the model each step calls changes, with the refiner's own prompt conditioning.

For one run, the job's pipeline view holds a `SwitchingDenoiser` in place of its denoiser. Before each model
call it looks at the timestep: once (T - 1 - t) / T reaches the switch point, this call and every later one
go to the refiner, with the text states its own encoders made of the same prompts (and, for SDXL, its own
pooled/size/aesthetic ids from its family). The cached pipelines are never changed: the stand-in lives in
the job's view only, and the view gets its own denoiser back after the run, even on error."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from modules.generation import stop_points
from modules.generation.prompt_embeds import encode_prompts
from modules.generation.sampling_context import SamplingContext
from modules.models.cache import weights_moved


class SwitchingDenoiser(torch.nn.Module):
    """The first model's denoiser until the switch, then the refiner's. Neither is a submodule of this one
    (the cache owns and places them); any public attribute asked of it (config, dtype ...) is the first model's."""

    def __init__(self, base: torch.nn.Module, refiner: torch.nn.Module, switch_at: float, train_steps: int,
                 refiner_conditions: Callable[[torch.Tensor], tuple[torch.Tensor, dict | None]],
                 on_switch: Callable[[], None]):
        super().__init__()
        object.__setattr__(self, "_models", (base, refiner))
        self._switch_at, self._train_steps = switch_at, train_steps
        self._refiner_conditions, self._on_switch = refiner_conditions, on_switch
        self.switched = False
        self.calls = [0, 0]  # model calls of the first model and of the refiner

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_"):  # hooks' own state (accelerate's _hf_hook ...) is never the first model's
                raise
            return getattr(object.__getattribute__(self, "_models")[0], name)

    def reached(self, timestep) -> bool:
        t = float(timestep.max()) if isinstance(timestep, torch.Tensor) else float(timestep)
        return (self._train_steps - 1 - t) / self._train_steps >= self._switch_at

    def forward(self, sample, timestep, encoder_hidden_states=None, *args, added_cond_kwargs=None, **kwargs):
        if not self.switched and self.reached(timestep):
            self.switched = True
            self._on_switch()
        if not self.switched:
            self.calls[0] += 1
            return self._models[0](sample, timestep, encoder_hidden_states, *args,
                                   added_cond_kwargs=added_cond_kwargs, **kwargs)
        self.calls[1] += 1
        states, added = self._refiner_conditions(sample)
        return self._models[1](sample, timestep, states, *args, added_cond_kwargs=added, **kwargs)


def _batched(positive, negative, batch: int):
    """[negative, positive] as the pipeline stacks them for classifier-free guidance, or positive alone."""
    if isinstance(positive, dict):
        return {k: _batched(positive[k], negative[k], batch) for k in positive}
    return positive if positive.shape[0] == batch else torch.cat([negative, positive])


@contextmanager
def switching(pipe, family, context: SamplingContext, prompts: list[str], negative_prompts: list[str],
              clip_skip: int, offload: str = "none") -> Iterator[SwitchingDenoiser | None]:
    """While inside, `pipe` (a job's view) calls its denoiser through a SwitchingDenoiser towards the context's
    refiner (modules/capabilities/refiner.py's Refiner; None: nothing changes). Marks `refiner.used` when it
    switched."""
    refiner = context.refiner
    if refiner is None:
        yield None
        return
    from modules.capabilities.img2img.task_pipeline import task_pipeline  # img2img imports txt2img, which needs this

    base = family.denoiser_of(pipe)
    model = refiner.model
    refiner_family = model.info.architecture.spec
    # The refiner's task pipeline (the family's img2img class over its cached modules): its encoders and config.
    refiner_pipe = task_pipeline(model, "img2img", pipe.scheduler)
    refiner_denoiser = refiner_family.denoiser_of(refiner_pipe)
    scale = pipe.vae_scale_factor
    conditions: dict = {}

    def refiner_conditions(sample: torch.Tensor) -> tuple[torch.Tensor, dict | None]:
        if not conditions:  # encoded at the switch, once: a run that never switches never runs the encoders
            embeds = encode_prompts(refiner_pipe, prompts, negative_prompts, clip_skip=clip_skip)
            conditions["embeds"] = embeds
            if refiner_family.added_conditions is not None:
                height, width = sample.shape[-2] * scale, sample.shape[-1] * scale
                conditions["added"] = refiner_family.added_conditions(embeds, width, height)
        embeds, batch = conditions["embeds"], sample.shape[0]
        states = _batched(embeds["prompt_embeds"], embeds["negative_prompt_embeds"], batch)
        added = conditions.get("added")
        return states, _batched(added[0], added[1], batch) if added is not None else None

    def on_switch() -> None:
        refiner.used = True
        refiner.take_over()
        if offload == "model":  # --medvram: the first model's denoiser is done; its device memory is the refiner's
            with torch.inference_mode(False):  # the run's inference mode must not mark the weights
                base.to("cpu")
                weights_moved()

    stand_in = SwitchingDenoiser(base, refiner_denoiser, refiner.switch_at,
                                 int(pipe.scheduler.config.get("num_train_timesteps", 1000)), refiner_conditions,
                                 on_switch)
    refiner.hand_back()  # a batch after one that switched: the first model's denoiser back on the device
    setattr(pipe, family.denoiser, stand_in)
    try:
        with stop_points.checked(refiner_denoiser, context.job.check):
            yield stand_in
    finally:
        setattr(pipe, family.denoiser, base)
        if getattr(pipe, "_all_hooks", None):  # --medvram: every module back in the offload hooks' care
            pipe.maybe_free_model_hooks()
            refiner_pipe.maybe_free_model_hooks()
