"""A lock that hands itself out in arrival order, so device jobs run first come, first served.

It bounds its queue (`limit` callers waiting; one more gets QueueFull, a clear "busy" answer rather than
a wait with no end), and a waiter whose job was cancelled leaves the queue without taking the device."""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from modules.errors import UserError

CANCEL_POLL_SECONDS = 0.1


class QueueFull(UserError):
    """Too many jobs are waiting for the device; the API answers 503 and the client may retry."""

    def __init__(self, waiting: int, limit: int):
        self.waiting, self.limit = waiting, limit
        super().__init__(f"busy: {waiting} jobs are already waiting for the device (the limit is {limit}, "
                         "set by --queue-limit); try again in a moment")


class FifoLock:
    def __init__(self, limit: int | None = None):
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()  # the waiters, in arrival order
        self._held = False
        self.limit = limit  # how many callers may wait behind the holder; None: no limit

    def acquire(self, cancelled: Callable[[], bool] | None = None) -> bool:
        """Wait for this caller's turn. False (and out of the queue) once `cancelled()` is true;
        QueueFull when `limit` callers are waiting already."""
        with self._cond:
            if not self._held and not self._queue:
                self._held = True
                return True
            if self.limit is not None and len(self._queue) >= self.limit:
                raise QueueFull(len(self._queue), self.limit)
            me = object()
            self._queue.append(me)
            try:
                while self._held or self._queue[0] is not me:
                    if cancelled is not None and cancelled():
                        return False
                    self._cond.wait(CANCEL_POLL_SECONDS if cancelled is not None else None)
                self._held = True
                return True
            finally:
                self._queue.remove(me)
                self._cond.notify_all()  # the next in line may be first now

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    @property
    def waiting(self) -> int:
        """How many callers are queued behind the current holder."""
        return len(self._queue)

    @property
    def full(self) -> bool:
        """Whether a caller arriving now would get QueueFull."""
        return self.limit is not None and (self._held or bool(self._queue)) and len(self._queue) >= self.limit
