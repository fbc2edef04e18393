"""The worker board: one small Ray actor beside the generation workers, owned by the front end.

It carries what Serve's one-way streams cannot: Interrupt, Skip and a departed client, from the front end to
whichever worker runs the job (the worker waits on it while the job runs: one call answered when something
changes, not a poll), and each worker's report of itself (device, what it holds, what it runs) for the Models tab.
Plain Python: no ray import here (an async actor: wait_signals awaits)."""
from __future__ import annotations

import asyncio
import time

BOARD_NAME = "zoo-worker-board"
NAMESPACE = "zoo-workers"
REPORT_FRESH_SECONDS = 8.0  # a worker unheard of for longer is gone (it reports every 2 s)


class WorkerBoard:
    def __init__(self):
        self._signals: dict[str, tuple[int, int, bool]] = {}
        self._changed: dict[str, asyncio.Event] = {}  # job id -> set when its signals change
        self._reports: dict[str, dict] = {}

    def signal(self, job_id: str, interrupts: int, skips: int, client_gone: bool) -> None:
        self._signals[job_id] = (interrupts, skips, client_gone)
        self._wake(job_id)

    def signals_for(self, job_id: str) -> tuple[int, int, bool]:
        """(Interrupt presses, Skip presses, client gone) for the job so far."""
        return self._signals.get(job_id, (0, 0, False))

    async def wait_signals(self, job_id: str, known: tuple, timeout: float) -> tuple[int, int, bool]:
        """The job's signals as soon as they differ from `known`, else after `timeout` seconds."""
        if self.signals_for(job_id) == tuple(known):
            changed = self._changed.setdefault(job_id, asyncio.Event())
            try:
                await asyncio.wait_for(changed.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        return self.signals_for(job_id)

    def forget(self, job_id: str) -> None:
        self._signals.pop(job_id, None)
        self._wake(job_id)

    def _wake(self, job_id: str) -> None:
        changed = self._changed.pop(job_id, None)
        if changed is not None:
            changed.set()

    def report(self, replica: str, info: dict) -> None:
        self._reports[replica] = {**info, "replica": replica, "seen": time.time()}

    def gone(self, replica: str) -> None:
        self._reports.pop(replica, None)

    def replicas(self) -> list[dict]:
        """The workers heard of lately, by id."""
        now = time.time()
        for replica in [r for r, info in self._reports.items() if now - info["seen"] > REPORT_FRESH_SECONDS]:
            del self._reports[replica]
        return [self._reports[r] for r in sorted(self._reports)]
