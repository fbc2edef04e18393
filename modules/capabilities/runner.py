"""The runner: every capability's job takes the same road, and its errors are mapped here only.

    job (created if none) → validate once → resolve the scripts of capability.tab → Processing p
    → a selected script's run(p, *args), else p.generate()
    p.generate(request) → always-on process(p) → validate again → manager.use(capability.model(request))
    (the device's line, or a small model's own lock) → capability.run(request, loaded, job, hooks)
    → always-on postprocess(p, result)

Errors: Interrupted before anything ran → job "interrupted" and the capability's empty result (a Skip
that reaches here: "done", the empty result);
out of memory → memory freed, capability.out_of_memory; a UserError → job "failed", raised as it is;
anything else → job "failed", the traceback logged under an id, raised as InternalError(id)."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from modules.capabilities.background_saves import BackgroundSaves, report_failures
from modules.capabilities.base import Capability, InternalError, RunContext
from modules.capabilities.scripting import Hooks, Processing, ScriptArgs, resolve_call, run_script
from modules.errors import UserError, report_internal_error, shown_message
from modules.extensions.scripts import ScriptCall
from modules.jobs import Interrupted, Job, Skipped
from modules.models import compiled

if TYPE_CHECKING:
    from modules.backend import Backend

log = logging.getLogger(__name__)


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower())


def free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def compile_warmup_noted(loaded: Any, job: Job) -> Iterator[None]:
    """--compile: a job in which the denoiser compiled (its first of a size) says how long that took."""
    spec = getattr(getattr(getattr(loaded, "info", None), "architecture", None), "spec", None)
    forward = compiled.compiled_forward(spec.denoiser_of(loaded.pipe)) if spec is not None else None
    before = forward.warmup_seconds if forward is not None else 0.0
    try:
        yield
    finally:
        if forward is not None and forward.warmup_seconds > before:
            said = f"torch.compile warm-up: {forward.warmup_seconds - before:.1f} s in this job (once per size)"
            job.note = f"{job.note} · {said}" if job.note else said


class Runner:
    def __init__(self, backend: "Backend"):
        self.backend = backend

    def context(self, job: Job | None = None) -> RunContext:
        return RunContext(limits=self.backend.limits, backend=self.backend, job=job)

    def validate(self, capability: Capability, request: Any, scripts: ScriptCall | None = None,
                 job: Job | None = None) -> Any:
        """The request validated and bounded (--max-* flags), as the job will run it; an unknown script in
        `scripts` is refused too. InvalidRequest names the field. run() does this itself: this is for an
        adapter or a script that wants to refuse before any work (every cell of a plot, say)."""
        validated = capability.validate(request, self.context(job))
        self.scripts_for(capability, scripts)
        return validated

    def scripts_for(self, capability: Capability, scripts: ScriptCall | None) -> ScriptArgs:
        """The selected and always-on scripts of the capability's tab, with their args."""
        return resolve_call(self.backend.extensions.scripts, scripts, capability.tab)

    def run(self, capability: Capability, request: Any, job: Job | None = None, scripts: ScriptCall | None = None,
            owner: str | None = None, queue_user: str | None = None) -> Any:
        """Run one job of `capability` to its end and return its result. Raises UserError for anything the
        user can fix (InternalError, with an id, for the rest); the job records the outcome."""
        backend = self.backend
        job = job or backend.new_job(capability.name, owner, queue_user=queue_user)
        try:
            request = capability.validate(request, self.context(job))
            if capability.timing is not None:
                job.note = capability.timing.note(request, self.context(job))
            result = self._with_scripts(capability, request, job, self.scripts_for(capability, scripts))
        except Interrupted:  # while waiting for the device (a cancelled or departed client): nothing ran
            job.finish("interrupted")
            return capability.empty_result(request)
        except Skipped:  # Skip in a capability without batches to move on to: nothing more to make
            job.finish("done")
            return capability.empty_result(request)
        except Exception as e:  # noqa: BLE001 - mapped to what the user is told, in this one place
            raise self._failed(capability, request, job, e) from None
        except BaseException:
            job.finish("failed", "stopped")
            raise
        job.finish("done")
        if capability.timing is not None:
            capability.timing.record(request, self.context(job), job)
        return result

    def _with_scripts(self, capability: Capability, request: Any, job: Job, resolved: ScriptArgs) -> Any:
        p = Processing(capability.tab, request, job, resolved,
                       generate=lambda r, j, hooks: self._on_model(capability, r, j, hooks),
                       validate=lambda r: capability.validate(r, self.context(job)),
                       callbacks=self.backend.extensions.callbacks, outdir=self.backend.outdir_for(job),
                       backend=self.backend)
        if resolved.selected is None:
            result = p.generate()
            return capability.finish_job(result, Hooks(p)) if capability.finish_job else result
        script, args = resolved.selected
        try:
            output = run_script(script, p, args, passthrough=(UserError, Interrupted))
        except Interrupted:  # stopped between the script's generations: its own result is lost
            return capability.empty_result(request)
        if output is None:
            return p.generate()
        return capability.script_result(output, request)

    def _on_model(self, capability: Capability, request: Any, job: Job, hooks: Hooks) -> Any:
        if self.backend.workers is not None:  # --workers ray: the model part runs on a generation worker
            return self.backend.workers.run(capability, request, job, hooks, self.backend)
        hooks.saves = saves = BackgroundSaves()
        try:
            with self.backend.manager.use(capability.model(request), cancelled=lambda: job.interrupt_requested,
                                          owner=job.queue_user or job.owner, key=job.id) as loaded:
                with compile_warmup_noted(loaded, job):
                    result = capability.run(request, loaded, job, hooks)
        finally:
            hooks.saves = None
            failed = saves.wait()  # the device is free now: the next job samples while these files are written
        report_failures(result, failed)
        return result

    def _failed(self, capability: Capability, request: Any, job: Job, error: Exception) -> UserError:
        """The error the user gets for `error`; the job is marked failed with its message."""
        if is_out_of_memory(error):
            free_device_memory()
            error = capability.out_of_memory(request)
        elif isinstance(error, OSError) and error.strerror:  # a full disk, a read-only folder: the user can act
            error = UserError(shown_message(error, capability.name))
        elif not isinstance(error, UserError):
            error = InternalError(report_internal_error(error, f"{capability.name} job"))
        job.finish("failed", str(error))
        return error
