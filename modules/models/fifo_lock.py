"""The device lock: one job at a time, users served in turn, each user's jobs first come, first served.

Each caller waits in its owner's queue (the user who started the job). When the device is released it is
handed to the first waiter of the owner served longest ago (an owner never served yet goes first), so a
user with 60 queued jobs makes another user wait for at most one of them, not for all 60.

The queue is bounded twice: `limit` callers waiting in all (--queue-limit) and `per_owner` callers waiting
per owner (--queue-per-user); one more gets QueueFull / UserQueueFull, a clear "busy" answer rather than a
wait with no end. Owner None is the server's own work (a checkpoint load, the Latent Explorer's VAE): it takes
its turn like a user but only --queue-limit bounds it. A waiter whose job was cancelled leaves the queue
without taking the device."""
from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Hashable

from modules.errors import UserError

CANCEL_POLL_SECONDS = 0.1


class QueueFull(UserError):
    """Too many jobs are waiting for the device; the API answers 503 and the client may retry."""

    def __init__(self, waiting: int, limit: int):
        self.waiting, self.limit = waiting, limit
        super().__init__(f"busy: {waiting} jobs are already waiting for the device (the limit is {limit}, "
                         "set by --queue-limit); try again in a moment")


class UserQueueFull(QueueFull):
    """This user has as many jobs waiting as one user may (--queue-per-user); the API answers 429."""

    def __init__(self, waiting: int, limit: int):
        self.waiting, self.limit = waiting, limit
        UserError.__init__(self, f"you already have {waiting} jobs waiting for the device (the limit per user "
                                 f"is {limit}, set by --queue-per-user); wait for one to start, or interrupt one")


class _Waiter:
    __slots__ = ("owner", "key", "arrival")

    def __init__(self, owner: Hashable, key: Hashable, arrival: int):
        self.owner, self.key, self.arrival = owner, key, arrival


class FairLock:
    def __init__(self, limit: int | None = None, per_owner: int | None = None):
        self._cond = threading.Condition()
        self._queues: dict[Hashable, deque[_Waiter]] = {}  # owner -> its waiters, in arrival order
        self._served: dict[Hashable, int] = {}  # owner -> the turn it last got the device (waiting or holding)
        self._turns = itertools.count(1)
        self._arrivals = itertools.count()
        self._count = 0  # waiters in all queues
        self._held = False
        self._holder: Hashable = None  # the owner on the device
        self._granted: _Waiter | None = None  # handed the device by release(), not yet awake
        self.limit = limit  # how many callers may wait behind the holder; None: no limit
        self.per_owner = per_owner  # how many of them may be one owner's; None: no limit

    def acquire(self, cancelled: Callable[[], bool] | None = None, owner: Hashable = None,
                key: Hashable = None) -> bool:
        """Wait for this caller's turn. False (and out of the queue) once `cancelled()` is true;
        QueueFull when `limit` callers wait already, UserQueueFull when `per_owner` of them are `owner`'s.
        `key` names the waiter for ahead_of (a job id, say)."""
        with self._cond:
            if not self._held and not self._count:
                self._take(owner)
                return True
            self._check_room(owner)
            me: _Waiter | None = _Waiter(owner, key, next(self._arrivals))
            self._queues.setdefault(owner, deque()).append(me)
            self._count += 1
            try:
                while self._granted is not me:
                    if cancelled is not None and cancelled():
                        return False
                    self._cond.wait(CANCEL_POLL_SECONDS if cancelled is not None else None)
                self._granted, me = None, None
                return True
            finally:
                if me is not None:  # cancelled (or failed) while waiting: leave, passing on a turn just handed over
                    self._leave(me)

    def release(self) -> None:
        with self._cond:
            self._hand_over()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def refuse_if_full(self, owner: Hashable = None) -> None:
        """QueueFull / UserQueueFull now if a job of `owner`'s arriving now would get it (without queueing)."""
        with self._cond:
            if self._held or self._count:
                self._check_room(owner)

    def ahead_of(self, key: Hashable) -> int:
        """How many jobs run before the waiter named `key`, the one on the device included (0: not waiting)."""
        with self._cond:
            queues = {owner: deque(waiters) for owner, waiters in self._queues.items()}
            served, turn = dict(self._served), max(self._served.values(), default=0)
            ahead = 1 if self._held else 0
            while queues:
                owner = self._next_owner(queues, served)
                waiter = queues[owner].popleft()
                if waiter.key == key:
                    return ahead
                ahead, turn = ahead + 1, turn + 1
                served[owner] = turn
                if not queues[owner]:
                    del queues[owner]
            return 0

    @property
    def waiting(self) -> int:
        """How many callers are queued behind the current holder."""
        return self._count

    def waiting_for(self, owner: Hashable) -> int:
        """How many of them are `owner`'s."""
        return len(self._queues.get(owner, ()))

    @property
    def full(self) -> bool:
        """Whether a caller arriving now would get QueueFull (from any owner)."""
        return self.limit is not None and (self._held or bool(self._count)) and self._count >= self.limit

    # under self._cond ----------------------------------------------------------------------------

    def _check_room(self, owner: Hashable) -> None:
        if self.limit is not None and self._count >= self.limit:
            raise QueueFull(self._count, self.limit)
        mine = len(self._queues.get(owner, ()))
        if self.per_owner is not None and owner is not None and mine >= self.per_owner:
            raise UserQueueFull(mine, self.per_owner)

    def _take(self, owner: Hashable) -> None:
        self._held, self._holder = True, owner
        self._served[owner] = next(self._turns)
        for known in [o for o in self._served if o != owner and o not in self._queues]:
            del self._served[known]  # only waiting owners and the holder need their turn remembered

    @staticmethod
    def _next_owner(queues: dict, served: dict) -> Hashable:
        """The owner served longest ago (never: 0), ties broken by who has waited longest."""
        return min(queues, key=lambda owner: (served.get(owner, 0), queues[owner][0].arrival))

    def _hand_over(self) -> None:
        """Give the device to the next waiter now (so no caller arriving meanwhile can cut in), or free it."""
        if not self._queues:
            self._held, self._holder = False, None
            return
        owner = self._next_owner(self._queues, self._served)
        waiter = self._queues[owner].popleft()
        if not self._queues[owner]:
            del self._queues[owner]
        self._count -= 1
        self._granted = waiter
        self._take(owner)
        self._cond.notify_all()

    def _leave(self, me: _Waiter) -> None:
        if self._granted is me:
            self._granted = None
            self._hand_over()
            return
        queue = self._queues.get(me.owner)
        if queue is not None and me in queue:
            queue.remove(me)
            self._count -= 1
            if not queue:
                del self._queues[me.owner]
        self._cond.notify_all()
