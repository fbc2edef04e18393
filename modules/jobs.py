"""Jobs: one record per long task, with progress, a live preview, interrupt and skip.

Every long job reports through here; the UI polls it for its progress bar and the API exposes it
by task id. A job is owned by the user or browser session that started it, so one user's
Interrupt never stops another user's work."""
from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from PIL import Image


class Interrupted(Exception):
    """The user pressed Interrupt (or left): stop the whole job, keep what is done."""


class Skipped(Exception):
    """The user pressed Skip: drop the rest of the current batch, go on with the next."""


_order = itertools.count()


@dataclass
class Job:
    kind: str
    owner: str | None = None
    queue_user: str | None = None  # who waits in the device's line for it (login or address); None: the owner
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = "queued"  # queued, running, done, failed, interrupted
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    batch_index: int = 0
    batch_count: int = 1
    step: int = 0
    steps: int = 0
    preview: Image.Image | None = None
    preview_version: int = 0  # bumps on every new preview, so pollers can tell it changed
    error: str | None = None
    interrupt_requested: bool = False
    interrupts: int = 0  # Interrupt presses: a second one also stops decoding the images of the first
    client_gone: bool = False  # the client that started the job left: stop at once, nobody awaits its images
    skip_requested: bool = False
    note: str | None = None  # said with its progress from the start: "a long job for a CPU: ..." (job_estimate)
    # When the first reported step of this job ended, and how many steps (over all batches) were done since:
    # the speed (it/s) leaves out the first step, which holds the warm-up (prompt encoding, first allocations).
    first_step_at: float | None = None
    steps_since_first: int = 0
    order: int = field(default_factory=lambda: next(_order))
    # --workers ray: the Serve replica that ran it, and whether its model was loaded there already (hot).
    worker: str | None = None
    worker_hot: bool | None = None
    worker_loras_hot: bool | None = None  # with LoRAs: whether that worker had them attached already
    dispatch_seconds: float | None = None  # its time in dispatch: to the worker, events and result back
    # Its time on the worker: in all, on the model (use + run), and the CPU time its thread used there.
    worker_seconds: tuple[float, float, float] | None = None

    def start(self, batch_count: int, steps: int) -> None:
        self.state, self.started_at = "running", time.time()
        self.batch_count, self.steps = batch_count, steps

    def begin_batch(self, index: int) -> None:
        self.batch_index, self.step = index, 0

    def report_step(self, step: int) -> None:
        self.record_step(step)
        self.check()

    def record_step(self, step: int) -> None:
        """The step count and speed, without checking for Interrupt (a worker's step, heard by the front end)."""
        if step != self.step:
            now = time.monotonic()
            if self.first_step_at is None:
                self.first_step_at = now
            else:
                self.steps_since_first += max(step - self.step, 1)  # a new batch starts again at step 1
        self.step = step

    @property
    def steps_per_second(self) -> float | None:
        """Sampling speed since the first step ended (A1111's it/s); None before two steps ended."""
        if self.first_step_at is None or not self.steps_since_first:
            return None
        elapsed = time.monotonic() - self.first_step_at
        return self.steps_since_first / elapsed if elapsed > 0 else None

    @property
    def speed_text(self) -> str | None:
        """'2.31 it/s', or '4.20 s/it' when a step takes more than a second (as A1111's bar shows)."""
        rate = self.steps_per_second
        if rate is None:
            return None
        return f"{rate:.2f} it/s" if rate >= 1 else f"{1 / rate:.2f} s/it"

    def set_preview(self, image: Image.Image) -> None:
        self.preview = image
        self.preview_version += 1

    def check(self) -> None:
        """Called between sampling steps and inside them (before each UNet block): raise if the user asked to stop."""
        if self.interrupt_requested:
            raise Interrupted()
        if self.skip_requested:
            self.skip_requested = False
            raise Skipped()

    def check_decoding(self, interrupts_before: int) -> None:
        """Called while decoding latents to images (between images, before each VAE block): raise if Interrupt
        was pressed since `interrupts_before` or the client left. The press that stopped the sampling does not
        count: its images are decoded from the latents sampled so far, as A1111 does."""
        if self.client_gone or self.interrupts > interrupts_before:
            raise Interrupted()

    def interrupt(self) -> None:
        self.interrupt_requested = True
        self.interrupts += 1

    def cancel(self) -> None:
        """The client went away (closed tab, dropped connection): stop now, decoding nothing more."""
        self.client_gone = True
        self.interrupt()

    def skip(self) -> None:
        if self.state in ("queued", "running"):
            self.skip_requested = True

    def finish(self, state: str = "done", error: str | None = None) -> None:
        if self.interrupt_requested and state == "done":
            state = "interrupted"
        self.state, self.error, self.finished_at = state, error, time.time()
        if state != "failed":
            self.step = self.steps
            self.batch_index = max(self.batch_count - 1, 0)

    @property
    def progress(self) -> float:
        """0..1 over all batches and steps."""
        if self.state in ("done", "interrupted"):
            return 1.0
        if not self.steps:
            return 0.0
        done = self.batch_index * self.steps + self.step
        return min(done / (self.batch_count * self.steps), 1.0)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left: the steps left at the measured speed once two steps ended, before that the time so
        far scaled by the progress."""
        if self.state != "running" or not self.started_at or self.progress <= 0:
            return None
        rate = self.steps_per_second
        if rate is not None:
            left = self.batch_count * self.steps - (self.batch_index * self.steps + self.step)
            return max(left, 0) / rate
        elapsed = time.time() - self.started_at
        return elapsed / self.progress - elapsed

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


class TaskIdInUse(Exception):
    """The owner has a task with this id already."""


ANY_OWNER = object()


class JobRegistry:
    """All jobs, newest kept; finished ones are forgotten after `keep` newer ones.

    A task id names a job within its owner's jobs only: two owners may pick the same id, and one owner's
    ids are unknown to every other owner (not even confirmed to exist)."""

    def __init__(self, keep: int = 200):
        self._jobs: OrderedDict[tuple[str | None, str], Job] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep

    def create(self, kind: str, owner: str | None = None, job_id: str | None = None,
               queue_user: str | None = None) -> Job:
        """A new job; raises TaskIdInUse when `owner` has a job with `job_id` already."""
        job = Job(kind=kind, owner=owner, queue_user=queue_user)
        if job_id:
            job.id = job_id
        with self._lock:
            if (owner, job.id) in self._jobs:
                raise TaskIdInUse(job.id)
            self._jobs[(owner, job.id)] = job
            finished = [j for j in self._jobs.values() if not j.active]
            for old in finished[: max(len(finished) - self._keep, 0)]:
                self._jobs.pop((old.owner, old.id), None)
        return job

    def get(self, job_id: str, owner=ANY_OWNER) -> Job | None:
        """`owner`'s job with this id; without an owner (the app's own use, tests), the newest of any owner."""
        with self._lock:
            if owner is not ANY_OWNER:
                return self._jobs.get((owner, job_id))
            found = [j for j in self._jobs.values() if j.id == job_id]
        return found[-1] if found else None

    def active(self, owner: str | None = None) -> list[Job]:
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.active]
        if owner is not None:
            jobs = [j for j in jobs if j.owner == owner]
        return sorted(jobs, key=lambda j: j.order)

    def running(self) -> Job | None:
        """The job on the device now (the oldest running one), as A1111's global progress shows."""
        running = [j for j in self.active() if j.state == "running"]
        return running[0] if running else None

    def interrupt(self, owner: str | None = None) -> int:
        jobs = self.active(owner)
        for job in jobs:
            job.interrupt()
        return len(jobs)

    def skip(self, owner: str | None = None) -> int:
        jobs = [j for j in self.active(owner) if j.state == "running"]
        for job in jobs:
            job.skip()
        return len(jobs)
