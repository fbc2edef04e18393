"""Prompt editing and alternation on SD3 and FLUX: the transformer's text inputs switched at their steps.

The SD/SDXL pipelines read the conditioning back from the step-end callback (scheduled_embeds.py). The
flow-matching pipelines of diffusers 0.42.1 cannot take all of it that way: SD3's img2img/inpaint and every
FLUX pipeline keep the pooled text vector (the adaLN conditioning) in a local the callback never sees, and
FLUX's negative prompt (real CFG) as well. So here the transformer's own inputs are replaced: a forward
pre-hook on the job's transformer puts the step's `encoder_hidden_states` and `pooled_projections` in place
of what the pipeline hands it — its public forward arguments, which every SD3/FLUX pipeline passes by name.

Which rows a call gets:
- a batch twice the job's (SD3's CFG): [negative, positive], as the pipeline joins them;
- FLUX's real CFG (two calls a step): the positive first, then the negative, as its pipelines call them;
- otherwise the positive.
Steps whose texts are the first step's are left alone: a prompt without editing runs bit-identically.

The hook lives for the run only (the device is held by the job, as stop_points.py relies on)."""
from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Iterator

import torch

TEXT_INPUT = "encoder_hidden_states"
POOLED_INPUT = "pooled_projections"


class TransformerConditioning:
    """The per-step text inputs of one sampling run. `step_ended(next_step)` from the step-end callback."""

    def __init__(self, scheduled, true_cfg: bool):
        self.scheduled = scheduled  # a ScheduledEmbeds
        self.true_cfg = true_cfg  # FLUX's CFG above 1: a separate negative call after the positive one
        self.step = 0
        self.calls_this_step = 0

    def step_ended(self, next_step: int) -> None:
        self.step, self.calls_this_step = next_step, 0

    @contextmanager
    def hooked(self, transformer: torch.nn.Module) -> Iterator[None]:
        handle = transformer.register_forward_pre_hook(self._before_call, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()

    def _before_call(self, module, args, kwargs):
        call, self.calls_this_step = self.calls_this_step, self.calls_this_step + 1
        rows = self.scheduled.rows
        index = min(self.step, len(rows) - 1)
        if rows[index] == rows[0] or TEXT_INPUT not in kwargs:
            return None
        values = self.scheduled.arguments(index)
        current = kwargs[TEXT_INPUT]
        if current.shape[0] == 2 * self.scheduled.batch:
            text = torch.cat([values["negative_prompt_embeds"], values["prompt_embeds"]])
            pooled = torch.cat([values["negative_pooled_prompt_embeds"], values["pooled_prompt_embeds"]])
        elif self.true_cfg and call % 2 == 1:
            text, pooled = values["negative_prompt_embeds"], values["negative_pooled_prompt_embeds"]
        else:
            text, pooled = values["prompt_embeds"], values["pooled_prompt_embeds"]
        kwargs = dict(kwargs)
        kwargs[TEXT_INPUT] = text.to(current.device, current.dtype)
        if kwargs.get(POOLED_INPUT) is not None:
            kwargs[POOLED_INPUT] = pooled.to(kwargs[POOLED_INPUT].device, kwargs[POOLED_INPUT].dtype)
        return args, kwargs
