"""A lock that hands itself out in arrival order, so device jobs run first come, first served."""
from __future__ import annotations

import itertools
import threading


class FifoLock:
    def __init__(self):
        self._cond = threading.Condition()
        self._tickets = itertools.count()
        self._serving = 0
        self._waiting = 0

    def __enter__(self):
        with self._cond:
            ticket = next(self._tickets)
            self._waiting += 1
            self._cond.wait_for(lambda: self._serving == ticket)
            self._waiting -= 1
        return self

    def __exit__(self, *exc):
        with self._cond:
            self._serving += 1
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """How many callers are queued behind the current holder."""
        return self._waiting
