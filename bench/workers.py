"""--workers ray against the local path, on the built-in zoo-shapes (CPU): prints JSON.

- jobs_per_second: a stream of small txt2img jobs from two submitting threads, locally, then with 1 and with 2
  workers (on a machine with fewer free cores than workers the second worker cannot add much);
- dispatch_ms: what a job spends in dispatch (front end → worker → back), which the local path does not have:
  the front end's time in WorkerPool.run minus the worker's own, from the request's arrival to its result
  (routing, pickling, the event stream), per job with the model loaded (target ≤ 50 ms);
- job_ms_parts: where a job's time goes, medians: the whole job, its model part (Runner._on_model: locally the
  device's line and the run; with a worker the whole trip), on the worker in all and on its model (manager.use and
  the run there), and dispatch; with the CPU time the job's thread used on the model (locally and on the worker:
  wall time above it is time spent waiting for a CPU);
- affinity: a mixed stream of 3 checkpoints (zoo-shapes under three titles) over 2 workers with room for 2
  each: the share of jobs whose worker held their model already (target ≥ 90 %), first loads included.

    venv/bin/python bench/workers.py [--jobs 24] [--affinity-jobs 60] [--steps 4] [--timing-only]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def make_backend(root: Path):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    checkpoints = root / "models" / "Stable-diffusion"
    for name in ("shapes-a", "shapes-b", "shapes-c"):
        shutil.copytree(ROOT / "models" / "Stable-diffusion" / "zoo-shapes", checkpoints / name,
                        copy_function=os.link)
    return Backend(BackendConfig(models_dir=root / "models", outdir=root / "outputs", cache_dir=root / "cache",
                                 devices=device_config("cpu", precision="fp32"), offline=True))


def request(backend, title: str, steps: int, seed: int):
    from modules.capabilities.txt2img import Txt2ImgRequest

    return backend.job_defaults(Txt2ImgRequest(prompt="a red circle on a white background", steps=steps, width=32,
                                               height=32, seed=seed, sampler="Euler", checkpoint=title,
                                               save_images=False))


def one_job(backend, title: str, steps: int, seed: int):
    from modules.capabilities.txt2img import TXT2IMG

    job = backend.new_job("txt2img")
    started = time.perf_counter()
    backend.run(TXT2IMG, request(backend, title, steps, seed), job)
    return time.perf_counter() - started, job


def timed_model_parts(backend) -> list[tuple[float, float]]:
    """Runner._on_model wrapped: (seconds, CPU seconds of its thread) of each job's model part, appended to the
    list returned."""
    seconds, original = [], backend.runner._on_model

    def timed(*args, **kwargs):
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            seconds.append((time.perf_counter() - started, time.thread_time() - cpu))

    backend.runner._on_model = timed
    return seconds


def median_ms(values) -> float:
    return round(statistics.median(values) * 1000, 1)


def stream(backend, titles: list[str], steps: int, threads: int = 2) -> tuple[float, list]:
    """Jobs per second for `titles` (one job each) from `threads` submitters; the jobs."""
    pending, jobs, lock = list(enumerate(titles)), [], threading.Lock()

    def submit():
        while True:
            with lock:
                if not pending:
                    return
                seed, title = pending.pop(0)
            jobs.append(one_job(backend, title, steps, seed)[1])

    started = time.perf_counter()
    workers = [threading.Thread(target=submit) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return len(titles) / (time.perf_counter() - started), jobs


_POOLS: list = []  # every pool kept: the first one owns the worker board, which dies with its last handle


def deploy(backend, replicas: int, models_per_replica: int):
    from modules.workers.config import WorkerConfig
    from modules.workers.pool import WorkerPool

    config = WorkerConfig(min_replicas=replicas, max_replicas=replicas, models_per_replica=models_per_replica,
                          cpus_per_replica=0.5, local_cpus=2)
    started = time.perf_counter()
    pool = WorkerPool.start(config, backend.config)
    if backend.workers is not None:
        pool._started_ray = backend.workers._started_ray  # the same Ray instance, redeployed
    backend.workers = pool
    _POOLS.append(pool)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--affinity-jobs", type=int, default=60)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--timed-jobs", type=int, default=12)
    parser.add_argument("--timing-only", action="store_true", help="the one-worker job timings only")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    out: dict = {"checkpoint": "zoo-shapes", "size": "32x32", "steps": args.steps, "device": "cpu"}
    try:
        backend = make_backend(root)
        titles = {t.split(" ")[0]: t for t in backend.checkpoint_titles()}
        a = titles["shapes-a"]

        out["start_seconds_1_worker"] = round(deploy(backend, 1, 2), 1)
        pool = backend.workers
        local, remote, dispatch, on_worker = [], [], [], []
        model_parts = timed_model_parts(backend)
        local_parts, remote_parts = [], []
        for i in range(args.timed_jobs + 1):  # interleaved: a shared machine's load falls on both alike
            backend.workers = None
            seconds, _ = one_job(backend, a, args.steps, i)
            local.append(seconds)
            local_parts.append(model_parts[-1])
            backend.workers = pool
            seconds, job = one_job(backend, a, args.steps, i)
            remote.append(seconds)
            remote_parts.append(model_parts[-1])
            dispatch.append(job.dispatch_seconds)
            on_worker.append(job.worker_seconds)
        local, remote, dispatch = local[1:], remote[1:], dispatch[1:]  # the first: loading, warm-up
        local_parts, remote_parts, on_worker = local_parts[1:], remote_parts[1:], on_worker[1:]
        out["job_ms_median"] = {"local": median_ms(local), "one_worker": median_ms(remote)}
        out["job_ms_parts"] = {
            "local": {"job": median_ms(local), "model_part": median_ms([p[0] for p in local_parts]),
                      "model_part_cpu": median_ms([p[1] for p in local_parts])},
            "one_worker": {"job": median_ms(remote), "model_part": median_ms([p[0] for p in remote_parts]),
                           "on_worker": median_ms([w[0] for w in on_worker]),
                           "on_worker_model": median_ms([w[1] for w in on_worker]),
                           "on_worker_model_cpu": median_ms([w[2] for w in on_worker]),
                           "dispatch": median_ms(dispatch)}}
        out["dispatch_ms_median"] = median_ms(dispatch)
        out["dispatch_ms_max"] = round(max(dispatch) * 1000, 1)
        out["load_average"] = [round(x, 2) for x in os.getloadavg()]
        if args.timing_only:
            out["torch_threads"] = {"front_end": torch.get_num_threads(),
                                    "workers": sorted({w.get("threads") for w in backend.workers.replicas()})}
            return
        backend.workers = None
        out["jobs_per_second"] = {"local": round(stream(backend, [a] * args.jobs, args.steps)[0], 2)}
        backend.manager.unload_all()
        backend.workers = pool
        out["jobs_per_second"]["one_worker"] = round(stream(backend, [a] * args.jobs, args.steps)[0], 2)

        out["start_seconds_2_workers"] = round(deploy(backend, 2, 2), 1)
        stream(backend, [a, a], args.steps)  # warm both
        out["jobs_per_second"]["two_workers"] = round(stream(backend, [a] * args.jobs, args.steps)[0], 2)

        rng = random.Random(0)
        mixed = [rng.choice([titles["shapes-a"], titles["shapes-b"], titles["shapes-c"]])
                 for _ in range(args.affinity_jobs)]
        _, jobs = stream(backend, mixed, args.steps)
        hot = sum(1 for j in jobs if j.worker_hot)
        out["affinity"] = {"jobs": len(jobs), "checkpoints": 3, "workers": 2, "models_per_worker": 2,
                           "found_hot": hot, "share_hot": round(hot / len(jobs), 3),
                           "workers_used": len({j.worker for j in jobs}),
                           "retries": backend.workers.retries}
        out["cpu_count"] = os.cpu_count()
        out["torch_threads"] = {"front_end": torch.get_num_threads(),
                                "workers": sorted({w.get("threads") for w in backend.workers.replicas()})}
    finally:
        from modules.workers.start import stop_workers

        if "backend" in locals():
            stop_workers(backend)
        shutil.rmtree(root, ignore_errors=True)
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
