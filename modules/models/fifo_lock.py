"""The device lock: one job at a time, users served in turn, each user's jobs first come, first served.
(`places` > 1: that many jobs at a time, as the front end's line for --workers ray, one place per worker.)

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
    def __init__(self, limit: int | None = None, per_owner: int | None = None, places: int = 1):
        self._cond = threading.Condition()
        self._queues: dict[Hashable, deque[_Waiter]] = {}  # owner -> its waiters, in arrival order
        self._served: dict[Hashable, int] = {}  # owner -> the turn it last got the device (waiting or holding)
        self._turns = itertools.count(1)
        self._arrivals = itertools.count()
        self._count = 0  # waiters in all queues
        self._holding = 0  # callers holding a place (on the device)
        self._places = max(1, int(places))
        self._granted: set[_Waiter] = set()  # handed a place by release(), not yet awake
        self.limit = limit  # how many callers may wait behind the holder; None: no limit
        self.per_owner = per_owner  # how many of them may be one owner's; None: no limit

    def acquire(self, cancelled: Callable[[], bool] | None = None, owner: Hashable = None,
                key: Hashable = None) -> bool:
        """Wait for this caller's turn. False (and out of the queue) once `cancelled()` is true;
        QueueFull when `limit` callers wait already, UserQueueFull when `per_owner` of them are `owner`'s.
        `key` names the waiter for ahead_of (a job id, say)."""
        with self._cond:
            if self._holding < self._places and not self._count:
                self._take(owner)
                return True
            self._check_room(owner)
            me: _Waiter | None = _Waiter(owner, key, next(self._arrivals))
            self._queues.setdefault(owner, deque()).append(me)
            self._count += 1
            try:
                while me not in self._granted:
                    if cancelled is not None and cancelled():
                        return False
                    self._cond.wait(CANCEL_POLL_SECONDS if cancelled is not None else None)
                self._granted.discard(me)
                me = None
                return True
            finally:
                if me is not None:  # cancelled (or failed) while waiting: leave, passing on a turn just handed over
                    self._leave(me)

    def release(self) -> None:
        with self._cond:
            self._hand_over()

    @property
    def places(self) -> int:
        return self._places

    def set_places(self, places: int) -> None:
        """How many callers may hold a place at once from now on (workers came or went); more places are
        handed to waiters at once, fewer take effect as holders leave."""
        with self._cond:
            self._places = max(1, int(places))
            while self._holding < self._places and self._queues:
                self._holding += 1
                self._hand_over()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def refuse_if_full(self, owner: Hashable = None) -> None:
        """QueueFull / UserQueueFull now if a job of `owner`'s arriving now would get it (without queueing)."""
        with self._cond:
            if self._holding >= self._places or self._count:
                self._check_room(owner)

    def ahead_of(self, key: Hashable) -> int:
        """How many jobs run before the waiter named `key`, the ones holding a place included (0: not waiting)."""
        with self._cond:
            queues = {owner: deque(waiters) for owner, waiters in self._queues.items()}
            served, turn = dict(self._served), max(self._served.values(), default=0)
            ahead = self._holding
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
    def holding(self) -> int:
        """How many callers hold a place now."""
        return self._holding

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
        busy = self._holding >= self._places or bool(self._count)
        return self.limit is not None and busy and self._count >= self.limit

    # under self._cond ----------------------------------------------------------------------------

    def _check_room(self, owner: Hashable) -> None:
        if self.limit is not None and self._count >= self.limit:
            raise QueueFull(self._count, self.limit)
        mine = len(self._queues.get(owner, ()))
        if self.per_owner is not None and owner is not None and mine >= self.per_owner:
            raise UserQueueFull(mine, self.per_owner)

    def _take(self, owner: Hashable) -> None:
        self._holding += 1
        self._served[owner] = next(self._turns)
        # Only waiting owners and the holders need their turn remembered; the holders are among the
        # last `places` owners served (with one place: the last one).
        latest = set(sorted(self._served, key=self._served.get)[-self._places:])
        for known in [o for o in self._served if o not in latest and o not in self._queues]:
            del self._served[known]

    @staticmethod
    def _next_owner(queues: dict, served: dict) -> Hashable:
        """The owner served longest ago (never: 0), ties broken by who has waited longest."""
        return min(queues, key=lambda owner: (served.get(owner, 0), queues[owner][0].arrival))

    def _hand_over(self) -> None:
        """A holder leaves: give its place to the next waiter now (so no caller arriving meanwhile can cut in),
        or free it (and keep it free while more callers hold places than there are now)."""
        self._holding -= 1
        if not self._queues or self._holding >= self._places:
            return
        owner = self._next_owner(self._queues, self._served)
        waiter = self._queues[owner].popleft()
        if not self._queues[owner]:
            del self._queues[owner]
        self._count -= 1
        self._granted.add(waiter)
        self._take(owner)
        self._cond.notify_all()

    def _leave(self, me: _Waiter) -> None:
        if me in self._granted:
            self._granted.discard(me)
            self._hand_over()
            return
        queue = self._queues.get(me.owner)
        if queue is not None and me in queue:
            queue.remove(me)
            self._count -= 1
            if not queue:
                del self._queues[me.owner]
        self._cond.notify_all()
