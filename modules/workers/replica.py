"""A generation worker: one Ray Serve replica owning one pipeline manager on one device (--workers ray).

Its models are multiplexed (serve.multiplexed, keyed by checkpoint title or kind:name), so Serve routes a job to
a replica that holds its model already and drops a replica's least recently used one past models_per_replica.
The LoRA sets it ran lately on each are its routing stats: the router prefers, among the replicas holding a job's
checkpoint, one that has the job's LoRAs attached (modules/workers/lora_sets.py, router.py).
A job runs here as in the local runner (manager.use, then capability.run), with a ReplicaJob and ReplicaHooks
that stream its progress and images back (modules/workers/replica_job.py). Imported only with --workers ray."""
from __future__ import annotations

import asyncio
import logging
import os
import pickle
import socket
import threading
import time

import ray
from ray import serve

from modules.capabilities.runner import free_device_memory, is_out_of_memory
from modules.capabilities.scripting import Processing, ScriptArgs
from modules.errors import ModelNotFound, UserError, report_internal_error
from modules.jobs import Interrupted, Skipped
from modules.models.refs import CHECKPOINT
from modules.workers.board import BOARD_NAME, NAMESPACE
from modules.workers.lora_sets import AttachedSets
from modules.workers.replica_job import ReplicaHooks, ReplicaJob

log = logging.getLogger(__name__)
SIGNAL_WAIT_SECONDS = 1.0  # one call to the board answers a change at once, or this long after
REPORT_SECONDS = 2.0
_DONE = object()


class HeldModel:
    """One multiplexed model of a replica; Serve calls __del__ when it drops it (least recently used)."""

    def __init__(self, key: str, ref, worker: "GenerationWorker"):
        self.key, self.ref, self._worker = key, ref, worker

    def __del__(self):
        worker, self._worker = getattr(self, "_worker", None), None
        if worker is not None:
            worker.dropped(self)


class GenerationWorker:
    def __init__(self, backend_config, models_per_replica: int):
        from modules.backend import Backend

        self.backend = Backend(backend_config)
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.board = ray.get_actor(BOARD_NAME, namespace=NAMESPACE)
        self.held: list[str] = []  # multiplexed keys, least recently used first
        self.loads = 0
        self.jobs_done = 0
        self.running: list[str] = []  # job ids: one on the device, the others waiting in its line
        self._refs: dict[str, object] = {}
        self.attached = AttachedSets()  # the LoRA sets run lately per held model: its adapters stay attached

        async def load(key: str) -> HeldModel:  # a plain function: Serve keeps its cache on it
            return await self._load(key)

        self._model = serve.multiplexed(max_num_models_per_replica=models_per_replica)(load)
        self._report()
        threading.Thread(target=self._report_every, daemon=True, name="worker-report").start()

    # What the Models tab shows ---------------------------------------------------------------------

    def describe(self) -> dict:
        import torch

        return {"pid": os.getpid(), "threads": torch.get_num_threads(), "node": socket.gethostname(), "device": str(self.backend.config.devices.device),
                "models": list(self.held), "lora_sets": self.attached.shown(), "running": list(self.running),
                "jobs_done": self.jobs_done, "loads": self.loads}

    def record_routing_stats(self) -> dict:
        """What the router reads (Serve asks every request_routing_stats_period_s): the LoRA sets held."""
        return self.attached.routing_stats()

    def _report(self) -> None:
        self.board.report.remote(self.replica, self.describe())

    def _report_every(self) -> None:
        while True:
            time.sleep(REPORT_SECONDS)
            try:
                self._report()
            except Exception:  # noqa: BLE001 - the board went with the front end: nothing to report to
                return

    # Multiplexed models ---------------------------------------------------------------------------

    async def _load(self, key: str) -> HeldModel:
        ref = self._refs[key]
        await asyncio.get_running_loop().run_in_executor(None, self._warm, ref)
        self.loads += 1
        self.held.append(key)
        self._report()
        return HeldModel(key, ref, self)

    def _warm(self, ref) -> None:
        self._find(ref)
        with self.backend.manager.use(ref):
            pass

    def _find(self, ref) -> None:
        """A checkpoint added since this worker scanned its folders (the front end found it): scan again."""
        if ref.kind == CHECKPOINT and ref.name:
            try:
                self.backend.manager.resolve(ref.name)
            except ModelNotFound:
                self.backend.registry.scan()

    def dropped(self, held: HeldModel) -> None:
        if held.key in self.held:
            self.held.remove(held.key)
        self.attached.forget(held.key)
        same_checkpoint = [k for k in self.held if self._refs.get(k) is not None
                           and self._refs[k].kind == CHECKPOINT and self._refs[k].name == held.ref.name]
        if held.ref.kind == CHECKPOINT and not same_checkpoint:  # held under another key too (its VAE file): kept
            try:
                self.backend.manager.unload(self.backend.manager.resolve(held.ref.name).title)
            except Exception as e:  # noqa: BLE001 - in use or gone already: the cache's budget still bounds it
                log.info("worker %s kept %s: %s", self.replica, held.key, e)
        self._report()

    # Jobs ----------------------------------------------------------------------------------------

    async def run_job(self, payload: dict):
        """Stream one job's events, in lists: ("worker", replica, hot, description, LoRAs attached or None) first,
        then the job's, then its outcome: ("result", result, seconds here, seconds of them on the model, the CPU seconds
        the job's thread used on the model) or ("stopped", "interrupted"|"skipped") or ("failed", kind, detail)."""
        started = time.perf_counter()
        key = serve.get_multiplexed_model_id()
        self._refs[key] = payload["ref"]
        loads_before = self.loads
        await self._model(key)
        if key in self.held:  # most recently used last
            self.held.remove(key)
            self.held.append(key)
        lora_set = payload.get("lora_set", "")
        loras_hot = self.attached.has(key, lora_set) if lora_set else None
        yield [("worker", self.replica, self.loads == loads_before, self.describe(), loras_hot)]
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def emit(event) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        job = ReplicaJob(kind=payload["capability"].name, owner=payload["owner"], queue_user=payload["queue_user"])
        job.id, job.emit = payload["job_id"], emit
        running = loop.run_in_executor(None, self._run, payload, job, emit, started)
        try:
            done = False
            while not done:  # the events come out as lists: what piled up while this loop waited, in one item
                piled = [await events.get()]
                while not events.empty():
                    piled.append(events.get_nowait())
                done = piled[-1] is _DONE
                if key in self.held and any(e is not _DONE and e[0] in ("result", "stopped") for e in piled):
                    # noted before the outcome leaves: the front end stops reading (cancels the stream) once it has it
                    self.attached.note(key, lora_set)
                    self._report()
                yield piled[:-1] if done else piled
        finally:
            if not running.done():  # the front end left (a departed client, a cancelled stream): stop the job
                job.cancel()
        await running

    def _run(self, payload: dict, job: ReplicaJob, emit, started: float) -> None:
        capability, request = payload["capability"], payload["request"]
        self.running.append(job.id)
        stop = threading.Event()
        signals = tuple(payload.get("signals", (0, 0, False)))  # pressed before the job left the front end
        skips_applied = [0]
        self._apply_signals(job, signals, skips_applied)
        threading.Thread(target=self._follow_signals, args=(job, stop, signals, skips_applied), daemon=True,
                         name="job-signals").start()
        try:
            self._find(capability.model(request))
            p = Processing(capability.tab, request, job, ScriptArgs(), generate=None, validate=lambda r: r,
                           backend=self.backend)
            hooks = ReplicaHooks(p, emit, payload["extra_infotext"])
            on_model, cpu = time.perf_counter(), time.thread_time()
            with self.backend.manager.use(capability.model(request), cancelled=lambda: job.interrupt_requested,
                                          owner=job.queue_user or job.owner, key=job.id) as loaded:
                result = capability.run(request, loaded, job, hooks)
            done = time.perf_counter()
            emit(("result", result, done - started, done - on_model, time.thread_time() - cpu))
        except Interrupted:
            emit(("stopped", "interrupted"))
        except Skipped:
            emit(("stopped", "skipped"))
        except Exception as e:  # noqa: BLE001 - sent as the runner would map it, the traceback logged here
            emit(_failure(e, capability.name))
        finally:
            stop.set()
            self.running.remove(job.id)
            self.jobs_done += 1
            self._report()
            emit(_DONE)

    def _follow_signals(self, job: ReplicaJob, stop: threading.Event, known: tuple, skips_applied: list[int]) -> None:
        """Interrupt, Skip and a departed client from the board while the job runs: one waiting call at a time
        (answered when they change), so a job's thread shares its CPU with no polling."""
        while not stop.is_set():
            try:
                signals = tuple(ray.get(self.board.wait_signals.remote(job.id, known, SIGNAL_WAIT_SECONDS)))
            except Exception:  # noqa: BLE001 - the board went with the front end: the stream's end stops the job
                return
            if signals != known and not stop.is_set():
                self._apply_signals(job, signals, skips_applied)
                known = signals

    @staticmethod
    def _apply_signals(job: ReplicaJob, signals: tuple[int, int, bool], skips_applied: list[int]) -> None:
        interrupts, skips, client_gone = signals
        if client_gone and not job.client_gone:
            job.cancel()
        while job.interrupts < interrupts:
            job.interrupt()
        while skips_applied[0] < skips:
            skips_applied[0] += 1
            job.skip()


def _failure(error: Exception, where: str) -> tuple:
    """("failed", "oom"|"user"|"internal", detail): what the front end raises for the runner to map."""
    if is_out_of_memory(error):
        free_device_memory()
        return ("failed", "oom", str(error))
    if isinstance(error, UserError):
        try:
            travels = str(pickle.loads(pickle.dumps(error))) == str(error)
        except Exception:  # noqa: BLE001 - an error class that does not travel: its message does
            travels = False
        return ("failed", "user", error if travels else UserError(str(error)))
    return ("failed", "internal", report_internal_error(error, f"{where} job on a worker"))
