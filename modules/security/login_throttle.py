"""Slow down password guessing (the login form and HTTP Basic logins alike).

After `max_failures` failed logins for one user name from one client address within `window_s`
seconds, further tries for that pair are refused (429, with Retry-After) until the oldest failure
in the window has aged out. Keyed by address *and* name, so one guesser neither locks the real user
out from elsewhere nor, behind a shared proxy address, everybody else; a success clears the pair."""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MAX_TRACKED = 10_000  # pairs remembered at most; the stalest are forgotten first


class LoginThrottle:
    def __init__(self, max_failures: int = 10, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str, user: str) -> float:
        """Seconds until `user` may try again from `address`; 0 when a try is allowed now."""
        with self._lock:
            times = self._recent((address, user))
            if len(times) < self.max_failures:
                return 0.0
            return max(0.0, times[0] + self.window_s - self.clock())

    def failed(self, address: str, user: str) -> None:
        with self._lock:
            key = (address, user)
            self._recent(key).append(self.clock())
            if len(self._failures) > MAX_TRACKED:
                stalest = min(self._failures, key=lambda k: self._failures[k][-1] if self._failures[k] else 0)
                del self._failures[stalest]

    def succeeded(self, address: str, user: str) -> None:
        with self._lock:
            self._failures.pop((address, user), None)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= self.clock() - self.window_s:
            times.popleft()
        return times
