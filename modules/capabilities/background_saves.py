"""A job's images written after it leaves the device: the next job samples while this one's PNGs are encoded
and written.

Hooks.save_image reserves each file's numbered name at once (so the job's result names it) and hands the
write to one thread per job, in order. The runner waits for them after the device lock is released, before
the job returns: the files are there when the user is told of them, on_image_saved callbacks run then (in the
job's thread, in order), and a write that failed (a full disk) is reported as a synchronous one was: in the
result's save_errors, its path taken out of the result, the image itself kept."""
from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class PendingSave:
    path: Path
    future: Future
    failed_message: str                  # what the user is told when the write fails
    saved: Callable[[], None]            # on_image_saved, once written


class BackgroundSaves:
    def __init__(self):
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[PendingSave] = []

    def submit(self, path: Path, write: Callable[[], None], failed_message: str, saved: Callable[[], None]) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="save")
        self._pending.append(PendingSave(path, self._pool.submit(write), failed_message, saved))

    def wait(self) -> list[tuple[Path, str]]:
        """Every write finished; the callbacks of those that succeeded run. Returns (path, message) per failure."""
        failed = []
        for pending in self._pending:
            error = pending.future.exception()
            if error is None:
                pending.saved()
            elif isinstance(error, OSError):
                failed.append((pending.path, f"{pending.failed_message}: {error.strerror or error}"))
            else:  # not the disk: a bug, said in the log; the user is told the file is missing
                log.error("writing %s failed", pending.path, exc_info=error)
                failed.append((pending.path, f"{pending.failed_message}: {type(error).__name__}"))
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return failed


def report_failures(result: Any, failed: list[tuple[Path, str]]) -> None:
    """Failed writes as a synchronous save reports them: out of the result's paths, into its save_errors (a
    result without save_errors: the first one fails the job, as it would have before)."""
    from modules.capabilities.scripting import ImageNotSaved  # noqa: PLC0415 - scripting imports this module

    for path, message in failed:
        paths = getattr(result, "paths", None)
        if isinstance(paths, list) and path in paths:
            paths.remove(path)
        errors = getattr(result, "save_errors", None)
        if not isinstance(errors, list):
            raise ImageNotSaved(message, None)
        errors.append(message)
