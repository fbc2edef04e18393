"""The front end's side of a worker's event stream (modules/workers/replica_job.py): progress onto the real job,
images through the real hooks (the always-on scripts' postprocess_image, saving, on_image_saved), and the
worker's result with those images and paths put in place of its placeholders."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from PIL import Image

from modules.capabilities.scripting import ImageNotSaved
from modules.workers.replica_job import IMAGE_TAG, pending_number

MAX_DEPTH = 3  # result → list → sample → image: how deep placeholders are looked for


class StreamedImages:
    """What the front end did with each streamed image: n → (final image, path or None, save error or None)."""

    def __init__(self, job, hooks):
        self.job, self.hooks = job, hooks
        self.done: dict[int, tuple[Image.Image, Path | None, str | None]] = {}

    def apply(self, event: tuple) -> None:
        kind, job = event[0], self.job
        if kind == "start":
            job.start(event[1], event[2])
        elif kind == "batch":
            job.begin_batch(event[1])
        elif kind == "step":
            job.record_step(event[1])
        elif kind == "preview":
            job.set_preview(event[1])
        elif kind == "process_batch":
            self.hooks.process_batch(event[1], event[2], event[3])
        elif kind == "image":
            _, n, image, infotext, seed, index, save_to = event
            image.info.pop(IMAGE_TAG, None)
            try:
                final, path = self.hooks.image_ready(image, infotext, seed, index, save_to)
                self.done[n] = (final, path, None)
            except ImageNotSaved as e:  # a full disk loses the file, never the image
                self.done[n] = (e.image, None, str(e))
        elif kind == "save":
            _, n, image, infotext, save_to = event
            image.info.pop(IMAGE_TAG, None)
            try:
                self.done[n] = (image, self.hooks.save_image(image, infotext, save_to), None)
            except ImageNotSaved as e:
                self.done[n] = (e.image, None, str(e))

    def patched(self, result):
        """`result` with the front end's images and paths in place of the worker's placeholders."""
        errors = [error for _, _, error in self.done.values() if error]
        result = self._patch(result, 0)
        if errors and isinstance(getattr(result, "save_errors", None), list):
            result.save_errors.extend(errors)
        return result

    def _patch(self, value, depth: int):
        if isinstance(value, Image.Image):
            n = value.info.get(IMAGE_TAG)
            if n is None or int(n) not in self.done:
                return value
            final = self.done[int(n)][0]
            final.info.update({k: v for k, v in value.info.items() if k != IMAGE_TAG})
            return final
        if isinstance(value, Path):
            n = pending_number(value)
            return value if n is None or n not in self.done else self.done[n][1]
        if depth >= MAX_DEPTH:
            return value
        if isinstance(value, list):
            patched = [self._patch(item, depth + 1) for item in value]
            # A placeholder path whose image was not saved here (a full disk) leaves the list, as locally.
            return [item for item, old in zip(patched, value) if not (item is None and pending_number(old) is not None)]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                old = getattr(value, f.name)
                new = self._patch(old, depth + 1)
                if new is not old:
                    object.__setattr__(value, f.name, new)
            return value
        return value
