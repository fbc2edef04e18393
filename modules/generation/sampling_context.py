"""What one txt2img or img2img job hands each sampling run it makes, as one value instead of a growing list of
optional arguments: built once per job (modules/capabilities/job_sampling.py), given each batch's seeds
(`for_batch`), and, for hires fix's second pass, the job as that pass reports to it and the first pass's steps.
The sampling code, its step-end callback (sampling_steps.py) and prompt editing's encoding (scheduled_embeds.py)
read what they need from it."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from modules.generation.preview import Previewer


@dataclass(frozen=True)
class SamplingContext:
    job: Any  # modules.jobs.Job: progress, previews, interrupts (hires fix's second pass: its steps after the first's)
    manager: Any = None  # the PipelineManager (hires fix's model upscalers); None in a bare call without a backend
    # modules/capabilities/refiner.py's Refiner, held beside the job's checkpoint for the whole job; None: no refiner
    refiner: Any = None
    embeddings: Any = None  # the textual-inversion embeddings the prompts may name (PromptEmbeddings); None: none
    previewer: Previewer = field(default_factory=Previewer)  # live previews: the job's method, frequency, budget
    seeds: Sequence[int] = ()  # the batch's seeds, one per image
    subseeds: Sequence[int] = ()  # and its variation seeds
    first_pass_steps: int | None = None  # hires fix's second pass: prompt editing's timeline goes on after these

    def for_batch(self, seeds: Sequence[int], subseeds: Sequence[int]) -> SamplingContext:
        return replace(self, seeds=seeds, subseeds=subseeds)

    def without_refiner(self) -> SamplingContext:
        """A run the refiner does not take over (with hires fix it works in the second pass, A1111's default)."""
        return replace(self, refiner=None)
