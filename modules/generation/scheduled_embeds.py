"""Prompt editing at sampling time: every distinct text of a prompt's schedule (prompt_schedule.py) is encoded
once per job, and the denoiser's conditioning is switched to the next text at the step where it starts.

The switch goes through diffusers' step-end callback (modules/compat.py `switched_conditioning`), which
conditions the following denoiser calls; the first step's embeddings are the pipeline call's own arguments.
Steps are the user's: a second-order sampler's two model calls of one step share its conditioning."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from modules import compat
from modules.errors import InvalidRequest
from modules.generation.prompt_embeds import MAX_PROMPT_CHUNKS, encode_prompts, longest_chunks
from modules.generation.prompt_schedule import prompt_schedule, text_at
from modules.generation.sampling_context import SamplingContext

MAX_SCHEDULED_CHUNKS = 8 * MAX_PROMPT_CHUNKS
"""Most encoder chunks over a job's distinct texts (prompts and negatives, each padded to the longest): bounds
the text encoders' work and the embeddings kept for the job (256 × 77 tokens × 2048 values for SDXL: 160 MB)."""


@dataclass
class ScheduledEmbeds:
    """The embeddings of a prompt and a negative prompt over the steps of one sampling run."""

    texts: list[tuple[str, str]]  # per step index: (prompt text, negative text)
    rows: list[tuple[int, int]]  # per step index: the rows of `encoded` that hold them
    encoded: dict[str, torch.Tensor]  # encode_prompts' output, one row per distinct text
    batch: int

    def arguments(self, step_index: int = 0) -> dict[str, torch.Tensor]:
        """Keyword arguments for `pipe(...)` (prompt_embeds, negative_prompt_embeds, SDXL's pooled ones) at a step,
        each repeated for the batch."""
        positive, negative = self.rows[min(step_index, len(self.rows) - 1)]
        chosen = {}
        for name, values in self.encoded.items():
            row = negative if name.startswith("negative") else positive
            if isinstance(values, list):  # one tensor per text, of its own length (Z-Image)
                chosen[name] = [values[row]] * self.batch
            else:
                chosen[name] = values[row:row + 1].repeat(self.batch, *([1] * (values.dim() - 1)))
        return chosen

    @property
    def changes(self) -> bool:
        return len(set(self.rows)) > 1

    def switch(self, pipeline, done_index: int, next_index: int, callback_kwargs: dict) -> dict:
        """Step-end callback outputs for the model call at `next_index` after one at `done_index` (step indices):
        the new conditioning where the texts change, else nothing."""
        last = len(self.rows) - 1
        if next_index > last or self.rows[min(done_index, last)] == self.rows[next_index]:
            return {}
        values = self.arguments(next_index)
        return compat.switched_conditioning(pipeline, callback_kwargs, values["prompt_embeds"],
                                            values["negative_prompt_embeds"], values.get("pooled_prompt_embeds"),
                                            values.get("negative_pooled_prompt_embeds"))


def encode_scheduled(pipe, prompt: str, negative_prompt: str, context: SamplingContext, schedule_steps: int,
                     run_steps: int, clip_skip: int = 1,
                     fields: tuple[str, str] = ("prompt", "negative_prompt")) -> ScheduledEmbeds:
    """Encode `prompt` and `negative_prompt` for a run of `run_steps` steps whose schedule has `schedule_steps`
    (img2img runs steps × strength of a schedule made for all its steps, as A1111 does: its step counter starts
    at 0 with the first step run), for the context's batch, with its embeddings; after its `first_pass_steps`
    in hires fix's second pass (prompt_schedule)."""
    first_pass_steps = context.first_pass_steps
    positives = prompt_schedule(prompt, schedule_steps, first_pass_steps, fields[0])
    negatives = prompt_schedule(negative_prompt, schedule_steps, first_pass_steps, fields[1])
    texts = [(text_at(positives, i), text_at(negatives, i)) for i in range(max(run_steps, 1))]
    distinct_positive = list(dict.fromkeys(p for p, _ in texts))
    distinct_negative = list(dict.fromkeys(n for _, n in texts))
    count = max(len(distinct_positive), len(distinct_negative))
    padded_positive = distinct_positive + distinct_positive[-1:] * (count - len(distinct_positive))
    padded_negative = distinct_negative + distinct_negative[-1:] * (count - len(distinct_negative))
    if count > 1:
        _check_work(pipe, distinct_positive + distinct_negative, fields[0])
    encoded = encode_prompts(pipe, padded_positive, padded_negative, clip_skip=clip_skip,
                             embeddings=context.embeddings)
    rows = [(distinct_positive.index(p), distinct_negative.index(n)) for p, n in texts]
    return ScheduledEmbeds(texts, rows, encoded, len(context.seeds))


def _check_work(pipe, texts: list[str], field: str) -> None:
    """Refuse a schedule whose distinct texts would take more than MAX_SCHEDULED_CHUNKS encoder chunks."""
    longest = longest_chunks(pipe, texts, field)
    if longest * len(texts) > MAX_SCHEDULED_CHUNKS:
        raise InvalidRequest(field, f"gives {len(texts)} different prompts over the steps (prompt editing, "
                                    f"alternation), {longest} chunks of 75 tokens each: over the limit of "
                                    f"{MAX_SCHEDULED_CHUNKS} chunks; simplify it")
