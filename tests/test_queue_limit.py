"""The device queue: one job more than --queue-limit is told "busy" at once, and a waiter whose job was
cancelled leaves the queue without ever holding the device (the live app's side: test_load, test_cancel)."""
from __future__ import annotations

import threading
import time

import pytest

from modules.models.fifo_lock import FairLock, QueueFull


def wait_until(predicate, timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def test_one_more_than_the_limit_is_busy_and_a_cancelled_waiter_leaves_the_queue():
    lock, cancelled, got = FairLock(limit=2), threading.Event(), {}
    assert lock.acquire() and not lock.full  # a free device is taken at once, whatever the limit

    def wait(name, cancel=None):
        got[name] = lock.acquire(cancel)

    first = threading.Thread(target=wait, args=("first", cancelled.is_set))
    second = threading.Thread(target=wait, args=("second",))
    first.start()
    wait_until(lambda: lock.waiting == 1)
    second.start()
    wait_until(lambda: lock.waiting == 2)
    assert lock.full
    with pytest.raises(QueueFull, match=r"^busy: 2 jobs are already waiting .*--queue-limit"):
        lock.acquire()

    cancelled.set()
    first.join(5)
    assert got == {"first": False} and lock.waiting == 1 and not lock.full
    lock.release()
    second.join(5)
    assert got == {"first": False, "second": True}
    lock.release()
    assert lock.acquire() and lock.waiting == 0
    lock.release()


def test_a_limit_of_zero_lets_no_job_wait():
    lock = FairLock(limit=0)
    with lock:
        assert lock.full
        with pytest.raises(QueueFull):
            lock.acquire()
    assert not lock.full
