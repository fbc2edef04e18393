"""txt2img's up-front word on long jobs: the checkpoint's learnt speed (modules/job_estimate.py); a job estimated
over --max-job-seconds is refused here, before it waits for the device."""
from __future__ import annotations

from modules.errors import UserError


class Txt2ImgTiming:
    def note(self, request, context) -> str | None:
        backend = context.backend
        try:
            checkpoint = backend.manager.resolve(request.checkpoint)
        except UserError:  # no such checkpoint: the job says so itself
            return None
        backend.step_times.refuse_if_too_long(checkpoint.title, request, backend.config.max_job_seconds)
        return backend.step_times.note(checkpoint.title, request, backend.config.devices.device.type,
                                       checkpoint.native_size)

    def record(self, request, context, job) -> None:
        backend = context.backend
        try:
            title = backend.manager.resolve(request.checkpoint).title
        except UserError:
            return
        backend.step_times.record(title, request, job)
