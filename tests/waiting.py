"""Waiting in tests for something another thread or process does."""
from __future__ import annotations

import time


def wait_for(predicate, what: str = "the condition", timeout: float = 120):
    """`predicate()`'s first truthy value, polled every 50 ms; AssertionError naming `what` after `timeout` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_coroutine(coroutine):
    """asyncio.run in a thread of its own: the session's Playwright browser (sync API) keeps an event loop
    running in the main thread, where asyncio.run refuses to start."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
