"""How long a txt2img job will take, said before it starts: a 2048² job on a CPU should say up front that it
takes hours, not sit at "0% · step 0/20" with no ETA until its first step ends.

Seconds per sampling step per megapixel are learnt per checkpoint from this process's finished jobs. Time
grows at least linearly with the pixels (attention grows faster), so an estimate scaled up from a smaller
job is a lower bound and says so. Before any job of a checkpoint has finished, a job far above the size the
checkpoint makes (on a CPU) is named as such, with the factor. A job whose estimate is over --max-job-seconds
is refused before it starts, with the estimate, rather than left to hold the device for hours."""
from __future__ import annotations

import threading

from modules.errors import UserError

LONG_SECONDS = 10 * 60  # an estimate above this is said up front
DEFAULT_MAX_JOB_SECONDS = 3600.0  # --max-job-seconds: an hour
CPU_PIXEL_FACTOR = 16  # on a CPU, with nothing learnt yet: 16x the checkpoint's native pixels (4x its side)


def _megapixel_steps(request) -> float:
    return request.width * request.height * request.batch_size * request.steps * request.batch_count / 1e6


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes < 48 * 60 else f"{minutes // (24 * 60)} days"


class StepTimes:
    """Seconds per megapixel-step, per checkpoint title, from finished jobs (the latest weighs most)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rates: dict[str, tuple[float, float]] = {}  # title -> (seconds per megapixel-step, megapixels)

    def record(self, checkpoint: str | None, request, job) -> None:
        if job.state != "done" or not job.started_at or not job.finished_at or not checkpoint:
            return
        work = _megapixel_steps(request)
        if work > 0:
            with self._lock:
                self._rates[checkpoint] = ((job.finished_at - job.started_at) / work,
                                           request.width * request.height / 1e6)

    def estimate(self, checkpoint: str | None, request) -> tuple[float, bool] | None:
        """(seconds, is_lower_bound) for `request`, or None before a job of this checkpoint finished."""
        with self._lock:
            learnt = self._rates.get(checkpoint or "")
        if learnt is None:
            return None
        rate, learnt_megapixels = learnt
        return rate * _megapixel_steps(request), request.width * request.height / 1e6 > 1.5 * learnt_megapixels

    def note(self, checkpoint: str | None, request, device_type: str, native_size: int) -> str | None:
        """One sentence for a job far beyond what the device does quickly; None for an ordinary job."""
        estimate = self.estimate(checkpoint, request)
        size = f"{request.width}×{request.height}"
        if estimate is not None:
            seconds, lower_bound = estimate
            if seconds < LONG_SECONDS:
                return None
            return (f"A long job for this {device_type.upper()}: {'at least ' if lower_bound else 'about '}"
                    f"{_duration(seconds)} (from this checkpoint's earlier jobs); a smaller size, batch or "
                    f"fewer steps is faster.")
        factor = request.width * request.height * request.batch_size / (native_size * native_size)
        if device_type != "cpu" or factor < CPU_PIXEL_FACTOR:
            return None
        return (f"A long job for a CPU: {size} × {request.batch_size} is {factor:,.0f}× the pixels of one "
                f"{native_size}×{native_size} image, the size this checkpoint makes, so each step takes at least "
                f"{factor:,.0f}× as long; try {native_size}×{native_size} first.")

    def refuse_if_too_long(self, checkpoint: str | None, request, limit_seconds: float | None) -> None:
        """Raise UserError naming the estimate when this checkpoint's learnt speed says `request` takes longer
        than `limit_seconds` (--max-job-seconds); nothing before a job of the checkpoint finished."""
        estimate = self.estimate(checkpoint, request)
        if estimate is None or limit_seconds is None:
            return
        seconds, lower_bound = estimate
        if seconds > limit_seconds:
            raise UserError(
                f"this job would take {'at least ' if lower_bound else 'about '}{_duration(seconds)} "
                f"({seconds:,.0f} s, from this checkpoint's earlier jobs), over the {limit_seconds:,.0f} s a job may "
                f"take here (--max-job-seconds): a smaller size, batch or fewer steps is faster.")
