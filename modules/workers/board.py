"""The worker board: one small Ray actor beside the generation workers, owned by the front end.

It carries what Serve's one-way streams cannot: Interrupt, Skip and a departed client, from the front end to
whichever worker runs the job (the worker polls it while the job runs), and each worker's report of itself
(device, what it holds, what it runs) for the Models tab. Plain Python: no ray import here."""
from __future__ import annotations

import time

BOARD_NAME = "zoo-worker-board"
NAMESPACE = "zoo-workers"
REPORT_FRESH_SECONDS = 8.0  # a worker unheard of for longer is gone (it reports every 2 s)


class WorkerBoard:
    def __init__(self):
        self._signals: dict[str, tuple[int, int, bool]] = {}
        self._reports: dict[str, dict] = {}

    def signal(self, job_id: str, interrupts: int, skips: int, client_gone: bool) -> None:
        self._signals[job_id] = (interrupts, skips, client_gone)

    def signals_for(self, job_id: str) -> tuple[int, int, bool]:
        """(Interrupt presses, Skip presses, client gone) for the job so far."""
        return self._signals.get(job_id, (0, 0, False))

    def forget(self, job_id: str) -> None:
        self._signals.pop(job_id, None)

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
