"""A job's images written after it leaves the device: the next job samples while this one's PNGs are encoded
and written.

Hooks.save_image reserves each file's numbered name at once (so the job's result names it) and hands the
write over here. The runner waits for them after the device lock is released, before the job returns: the
files are there when the user is told of them, on_image_saved callbacks run then (in the job's thread, in
order), and a write that failed (a full disk) is reported as a synchronous one was: in the result's
save_errors, its path taken out of the result, the image itself kept.

A job with one image writes it in its own thread once it has left the device: starting a writer thread costs
more than writing a small PNG (3 ms median, 27 ms at worst on a busy 2-core machine, against 1 ms for a 32²
PNG), and a thread writing while the job samples competes with it for the same cores. From a job's second
image on, one writer thread per job takes them all, in order, so a job of many images has its earlier
pictures written while it samples the rest."""
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
    write: Callable[[], None]
    failed_message: str                  # what the user is told when the write fails
    saved: Callable[[], None]            # on_image_saved, once written
    future: Future | None = None         # given to the writer thread; None: written at wait()


class BackgroundSaves:
    def __init__(self):
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[PendingSave] = []

    def submit(self, path: Path, write: Callable[[], None], failed_message: str, saved: Callable[[], None]) -> None:
        self._pending.append(PendingSave(path, write, failed_message, saved))
        if len(self._pending) > 1:  # a second image: the job has several, the earlier ones are written meanwhile
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="save")
            for pending in self._pending:
                if pending.future is None:
                    pending.future = self._pool.submit(pending.write)

    def wait(self) -> list[tuple[Path, str]]:
        """Every write finished; the callbacks of those that succeeded run. Returns (path, message) per failure."""
        failed = []
        for pending in self._pending:
            error = pending.future.exception() if pending.future is not None else _written(pending.write)
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


def _written(write: Callable[[], None]) -> BaseException | None:
    """Run `write` here; the error it raised, as a future would hold it."""
    try:
        write()
    except Exception as error:  # noqa: BLE001 - reported by wait() as the writer thread's would be
        return error
    return None


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
