"""A job as a worker runs it: the capability's code sees a Job and Hooks as in the local runner, and every
report it makes becomes an event streamed back to the front end, which owns the real job and the saving.

Events (tuples, first item the kind):
    ("start", batch_count, steps) · ("batch", index) · ("step", step) · ("preview", image)
    ("process_batch", batch_number, prompts, seeds)
    ("image", n, image, infotext, seed, index, save_to)   hooks.image_ready: the front end post-processes and saves
    ("save", n, image, infotext, save_to)                 hooks.save_image (a grid)
An image handed back here carries its number n in image.info, and its path is a placeholder: the front end puts
its own image and path in their place when the result arrives (modules/workers/front_end_events.py)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from modules.capabilities.scripting import Hooks
from modules.jobs import Job

IMAGE_TAG = "zoo-worker-image"  # image.info key: which streamed image this is
PENDING_PREFIX = "<worker image "  # a placeholder path: "<worker image 3>"


def pending_path(n: int) -> Path:
    return Path(f"{PENDING_PREFIX}{n}>")


def pending_number(path) -> int | None:
    text = str(path)
    if isinstance(path, Path) and text.startswith(PENDING_PREFIX) and text.endswith(">"):
        return int(text[len(PENDING_PREFIX):-1])
    return None


class ReplicaJob(Job):
    """A Job whose reports are also sent to the front end; its Interrupt/Skip come from the front end."""

    emit: Callable[[tuple], None] = staticmethod(lambda event: None)

    def start(self, batch_count: int, steps: int) -> None:
        super().start(batch_count, steps)
        self.emit(("start", batch_count, steps))

    def begin_batch(self, index: int) -> None:
        super().begin_batch(index)
        self.emit(("batch", index))

    def report_step(self, step: int) -> None:
        if step != self.step:
            self.emit(("step", step))
        super().report_step(step)

    def set_preview(self, image) -> None:
        super().set_preview(image)
        self.emit(("preview", image.copy()))


class ReplicaHooks(Hooks):
    """Hooks whose images go to the front end: its always-on scripts post-process them, it saves them."""

    def __init__(self, p, emit: Callable[[tuple], None], extra_infotext: dict):
        super().__init__(p)
        self._emit, self._extra, self._count = emit, dict(extra_infotext), 0

    def _number(self, image) -> int:
        n, self._count = self._count, self._count + 1
        image.info[IMAGE_TAG] = str(n)
        return n

    def process_batch(self, batch_number: int, prompts: list[str], seeds: list[int]) -> None:
        self._emit(("process_batch", batch_number, list(prompts), list(seeds)))

    def image_ready(self, image, infotext, seed, index, save_to):
        n = self._number(image)
        self._emit(("image", n, image.copy(), infotext, seed, index, save_to))
        return image, pending_path(n) if save_to is not None else None

    def save_image(self, image, infotext, save_to):
        n = self._number(image)
        self._emit(("save", n, image.copy(), infotext, save_to))
        return pending_path(n)

    def extra_infotext(self) -> dict:
        """The front end's scripts' additions, and what the job adds here (the LoRAs' hashes: use_loras)."""
        return {**self._extra, **(self.p.extra_generation_params if self.p is not None else {})}
