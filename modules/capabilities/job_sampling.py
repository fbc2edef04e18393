"""What a txt2img or img2img job sets up once for all its batches: the textual-inversion embeddings its prompts may
name, the refiner held beside its checkpoint, the live previewer with its decoder. Together they are the job's
SamplingContext (modules/generation/sampling_context.py)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from modules.capabilities.refiner import refiner_for
from modules.capabilities.scripting import Hooks
from modules.generation import preview
from modules.generation.sampling_context import SamplingContext
from modules.jobs import Job
from modules.models.manager import LoadedCheckpoint


def prompt_embeddings(hooks: Hooks, model: LoadedCheckpoint):
    """The textual-inversion embeddings this job's prompts may name (modules/networks/embeddings.py); None
    for a generation without a backend (a bare Processing in a test)."""
    embeddings = getattr(getattr(hooks.p, "backend", None), "embeddings", None)
    return embeddings.for_pipe(model.pipe, model.info.architecture.spec) if embeddings is not None else None


@contextmanager
def job_sampling(request, model: LoadedCheckpoint, job: Job, hooks: Hooks) -> Iterator[SamplingContext]:
    """The job's SamplingContext; its refiner and preview decoder are held while inside."""
    backend = hooks.p.backend if hooks.p is not None else None
    manager = backend.manager if backend is not None else None
    embeddings = prompt_embeddings(hooks, model)
    with refiner_for(request, model, manager) as refiner, \
            preview.previewing(backend, model.info.architecture.spec) as previewer:
        yield SamplingContext(job, manager, refiner, embeddings, previewer)
