"""The front end's worker pool (--workers ray): starts or joins Ray, deploys the generation workers, and runs a
job's model part on one of them for the runner (Runner._on_model), streaming its progress and images back.

Fairness: the front end keeps the one fair line (modules/models/fifo_lock.py, users take turns as on one device)
with one place per worker; a job that holds the device (a checkpoint, a VAE or upscaler file) is handed to Serve
only when it has a place, so a user's burst waits here, not in the workers' own lines, and another user's job
goes out at the next free place. β-VAE and GAN jobs skip the line, as they skip the device's line locally.

Faults: a worker that dies while running a job before any image came back is retried once on another
worker (Serve replaces the dead one); after an image came back the job fails with a message saying so,
the images already saved kept. Imported only with --workers ray: ray is not needed otherwise."""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from modules.errors import UserError
from modules.jobs import Interrupted, Skipped
from modules.models.fifo_lock import FairLock
from modules.models.refs import CHECKPOINT, ZOO_KINDS
from modules.workers.board import BOARD_NAME, NAMESPACE, WorkerBoard
from modules.workers.config import WorkerConfig
from modules.workers.front_end_events import StreamedImages
from modules.workers.lora_sets import lora_set_of

log = logging.getLogger(__name__)
APP_NAME = "zoo-workers"
DEPLOYMENT_NAME = "generation-worker"
SIGNAL_FORWARD_SECONDS = 0.05
PLACES_REFRESH_SECONDS = 2.0
ROUTING_STATS_SECONDS = 1.0  # how often Serve asks each worker which LoRA sets it holds, for the router
APP_ROOT = Path(__file__).resolve().parents[2]
# Ray and the workers never reach for the network: no usage stats, no model hub.
OFFLINE_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "DISABLE_TELEMETRY": "1", "DIFFUSERS_DISABLE_REMOTE_CODE": "1",
               "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}


# Serve's router waits 0.1 s for a worker's queue length and matches a checkpoint for 1-2 s, then sends the job to
# any worker: on a busy machine the one holding the model answers late and the job reloads it elsewhere. A reload
# costs seconds to minutes; waiting a little longer costs little. Read when ray.serve is imported.
ROUTING_PATIENCE_ENV = {"RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S": "1.0",
                        "RAY_SERVE_MAX_QUEUE_LENGTH_RESPONSE_DEADLINE_S": "5.0",
                        "RAY_SERVE_MULTIPLEXED_MODEL_ID_MATCHING_TIMEOUT_S": "5.0"}


class WorkersUnavailable(UserError):
    """Ray is not installed or not reachable, or the workers could not start."""


class WorkerLost(UserError):
    """The worker running a job stopped (its process died, its node left)."""


def _worker_env() -> dict:
    env = dict(OFFLINE_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(APP_ROOT), os.environ.get("PYTHONPATH")) if p)
    return env


def probe(address: str, timeout: float = 5.0) -> None:
    """A cluster address (host:port or ray://host:port) that answers a TCP connect; Ray's own connect waits
    minutes on one that does not. "auto" (the cluster started on this machine) is left to Ray."""
    import socket

    hostport = address.split("://", 1)[-1]
    if address == "auto" or ":" not in hostport:
        return
    host, port = hostport.rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except ValueError:
        raise WorkersUnavailable(f"--ray-address {address}: the port must be a number") from None
    except OSError as e:
        raise WorkersUnavailable(f"cannot reach Ray at {address}: {e.strerror or e}") from None


class WorkerPool:
    def __init__(self, config: WorkerConfig, handle, board, started_ray: bool, backend_config=None):
        self.config, self.handle, self.board = config, handle, board
        self._started_ray = started_ray
        self.retries = 0  # jobs run again after their worker died (bench and tests read it)
        # The fair line: --queue-limit and --queue-per-user count its waiters, as the device's line does locally.
        self.line = FairLock(getattr(backend_config, "queue_limit", None), getattr(backend_config, "queue_per_user", None),
                             places=config.min_replicas)
        self._closed = threading.Event()
        if config.max_replicas > config.min_replicas:
            threading.Thread(target=self._follow_workers, daemon=True, name="worker-places").start()

    @classmethod
    def start(cls, config: WorkerConfig, backend_config) -> "WorkerPool":
        """Join the cluster at config.address (else start a local Ray instance) and deploy the workers; waits
        until they are up. WorkersUnavailable (one line) when Ray is missing or unreachable."""
        for name, value in {**OFFLINE_ENV, **ROUTING_PATIENCE_ENV}.items():
            os.environ.setdefault(name, value)
        try:
            import ray
            from ray import serve
        except ImportError:
            raise WorkersUnavailable("ray is not installed (pip install -r requirements-ray.txt)") from None
        started_ray = False
        if config.address:
            probe(config.address)
        try:
            if not ray.is_initialized():
                options = dict(namespace=NAMESPACE, runtime_env={"env_vars": _worker_env()}, log_to_driver=False)
                if config.address:
                    ray.init(address=config.address, **options)
                else:
                    os.environ["PYTHONPATH"] = _worker_env()["PYTHONPATH"]
                    ray.init(num_cpus=config.local_cpus, object_store_memory=config.object_store_bytes,
                             include_dashboard=False, **options)
                    started_ray = True
        except WorkersUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - any failure to reach Ray is the one line the user reads
            where = config.address or "a local instance"
            raise WorkersUnavailable(f"cannot reach Ray at {where}: {str(e).splitlines()[0] if str(e) else e}") from None
        try:
            from ray.serve.config import RequestRouterConfig

            from modules.workers.replica import GenerationWorker
            from modules.workers.router import CheckpointRouter

            board = ray.remote(num_cpus=0)(WorkerBoard).options(
                name=BOARD_NAME, namespace=NAMESPACE, get_if_exists=True).remote()
            serve.start(proxy_location="Disabled")
            scaling = ({"num_replicas": config.min_replicas} if config.max_replicas == config.min_replicas else
                       {"num_replicas": "auto", "autoscaling_config": {
                           "min_replicas": config.min_replicas, "max_replicas": config.max_replicas,
                           "target_ongoing_requests": config.target_ongoing_requests}})
            deployment = serve.deployment(
                GenerationWorker, name=DEPLOYMENT_NAME, max_ongoing_requests=config.jobs_per_replica, **scaling,
                request_router_config=RequestRouterConfig(request_router_class=CheckpointRouter,
                                                          request_routing_stats_period_s=ROUTING_STATS_SECONDS),
                ray_actor_options={"num_cpus": config.cpus_per_replica, "num_gpus": config.gpus_per_replica,
                                   "runtime_env": {"env_vars": _worker_env()}})
            handle = serve.run(deployment.bind(backend_config, config.models_per_replica), name=APP_NAME,
                               route_prefix=None)
        except Exception as e:  # noqa: BLE001 - the workers could not start: say why in one line
            if started_ray:
                ray.shutdown()
            raise WorkersUnavailable(f"the generation workers did not start: {str(e).splitlines()[0]}") from None
        log.info("generation workers: %d to %d on Ray (%s)", config.min_replicas, config.max_replicas,
                 config.address or "local instance")
        return cls(config, handle, board, started_ray, backend_config)

    def close(self) -> None:
        import ray
        from ray import serve

        self._closed.set()
        try:
            serve.delete(APP_NAME)
            if self._started_ray:
                serve.shutdown()
        finally:
            if self._started_ray:
                ray.shutdown()

    # What the Models tab shows ---------------------------------------------------------------------

    def replicas(self) -> list[dict]:
        """Each worker heard of lately: replica id, pid, node, device, models (least recently used first),
        the job it runs, jobs done."""
        import ray

        return ray.get(self.board.replicas.remote(), timeout=10)

    def _follow_workers(self) -> None:
        """Autoscaling: one place per worker up, plus one while Serve may add a worker (so it sees the demand
        that makes it add one)."""
        while not self._closed.wait(PLACES_REFRESH_SECONDS):
            try:
                live = len(self.replicas())
            except Exception:  # noqa: BLE001 - the board is restarting or gone: keep the places as they are
                continue
            self.line.set_places(min(self.config.max_replicas, max(self.config.min_replicas, live + 1)))

    # Jobs ----------------------------------------------------------------------------------------

    def model_key(self, ref, backend) -> str:
        """The multiplexing key: a checkpoint's title (with its component files), else kind:name."""
        if ref.kind == CHECKPOINT:
            title = backend.manager.resolve(ref.name).title
            return title + ("+" + ",".join(ref.modules) if ref.modules else "")
        return f"{ref.kind}:{ref.name or ''}"

    def run(self, capability, request, job, hooks, backend):
        """capability.run on a worker (manager.use there), as Runner._on_model runs it locally; returns the
        result with this process's images and paths; raises as the local run would (Interrupted, Skipped,
        UserError, an out-of-memory RuntimeError), or WorkerLost."""
        ref = capability.model(request)
        payload = {"capability": capability, "request": request, "ref": ref, "job_id": job.id, "owner": job.owner,
                   "queue_user": job.queue_user, "extra_infotext": dict(hooks.extra_infotext()),
                   "lora_set": lora_set_of(request)}
        key = self.model_key(ref, backend)
        base_job = getattr(job, "_job", job)  # a script's JobPart: the job itself holds the flags
        holds_device = ref.kind not in ZOO_KINDS
        if holds_device and not self.line.acquire(lambda: base_job.interrupt_requested,
                                                  owner=job.queue_user or job.owner, key=job.id):
            raise Interrupted()  # cancelled while waiting for a place: nothing ran
        forwarder = _SignalForwarder(self.board, base_job)
        try:
            for attempt in (1, 2):
                streamed = StreamedImages(job, hooks)
                payload["signals"] = (base_job.interrupts, forwarder.skips, base_job.client_gone)  # pressed already
                try:
                    return self._stream(key, payload, base_job, streamed)
                except WorkerLost as lost:
                    if attempt == 2 or streamed.done or base_job.interrupt_requested:
                        kept = f"; the {len(streamed.done)} images it made were kept" if streamed.done else ""
                        raise WorkerLost(f"{lost}{kept}") from None
                    self.retries += 1
                    log.warning("%s; running job %s again on another worker", lost, job.id)
        finally:
            forwarder.stop()
            if holds_device:
                self.line.release()

    def _stream(self, key: str, payload: dict, job, streamed: StreamedImages):
        import ray.exceptions

        started = time.perf_counter()
        response = self.handle.options(multiplexed_model_id=key, stream=True).run_job.remote(payload)
        worker = None
        try:
            for event in (event for piled in response for event in piled):
                kind = event[0]
                if kind == "worker":
                    worker = job.worker = event[1]
                    job.worker_hot, job.worker_loras_hot = event[2], event[4]
                elif kind == "result":
                    result = streamed.patched(event[1])
                    job.dispatch_seconds = max(time.perf_counter() - started - event[2], 0.0)
                    job.worker_seconds = (event[2], event[3], event[4])
                    return result
                elif kind == "stopped":
                    raise Interrupted() if event[1] == "interrupted" else Skipped()
                elif kind == "failed":
                    _raise_failure(event[1], event[2])
                else:
                    streamed.apply(event)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
            name = f"worker {worker}" if worker else "the worker"
            raise WorkerLost(f"{name} running this job stopped ({type(e).__name__})") from None
        finally:
            response.cancel()
        raise WorkerLost("the worker ended the job without a result")


def _raise_failure(kind: str, detail) -> None:
    from modules.capabilities.base import InternalError

    if kind == "oom":
        raise RuntimeError(f"out of memory on the worker: {detail}")
    if kind == "user":
        raise detail
    raise InternalError(detail)


class _SignalForwarder:
    """Interrupt, Skip and a departed client, from the front end's job to the board the worker polls."""

    def __init__(self, board, job):
        self.board, self.job = board, job
        self._stop = threading.Event()
        self._sent = (0, 0, False)
        self.skips = 0  # Skip presses taken from the job
        threading.Thread(target=self._forward, daemon=True, name=f"signals-{job.id[:8]}").start()

    def _forward(self) -> None:
        job = self.job
        while True:  # once at once: an Interrupt pressed before the job reached a worker
            if job.skip_requested:  # taken here: the worker's copy of the job raises Skipped
                job.skip_requested = False
                self.skips += 1
            now = (job.interrupts, self.skips, job.client_gone)
            if now != self._sent:
                self.board.signal.remote(job.id, *now)
                self._sent = now
            if self._stop.wait(SIGNAL_FORWARD_SECONDS):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._sent != (0, 0, False):
            self.board.forget.remote(self.job.id)
