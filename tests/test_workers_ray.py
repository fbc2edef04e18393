"""--workers ray: the app started as a user would (webui.main with its flags) on a local Ray instance with two CPU
generation workers and two checkpoints (the built-in zoo-shapes under two titles). Jobs stay where their model is
loaded, users take turns over all workers (one user's burst does not hold back another's job), pictures equal the
local run's, the UI's Interrupt reaches the worker, and a worker killed mid-job loses no accepted job. Needs ray
(requirements.txt); skipped without it."""
from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

pytest.importorskip("ray")
pytest.importorskip("ray.serve")

from tests import gradio_raw  # noqa: E402
from tests.lora_fixtures import make_kohya_lora  # noqa: E402
from tests.inprocess_app import endpoint_data, running_app  # noqa: E402
from tests.waiting import wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "models" / "Stable-diffusion" / "zoo-shapes"
PROMPT = "a red circle on a white background"
ALICE, BOB = ("alice", "alice-pw"), ("bob", "bob-pw")  # API logins: two users in the front end's line
BURST = 8  # jobs user A sends at once
LORAS = {"ink": 1, "film": 2}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("workers-ray")
    checkpoints = root / "models" / "Stable-diffusion"
    for name in ("shapes-a", "shapes-b"):  # one model under two titles: two checkpoints to the app
        shutil.copytree(SHAPES, checkpoints / name, copy_function=os.link)
    for name, seed in LORAS.items():  # two LoRA sets for one checkpoint
        make_kohya_lora(SHAPES, root / "models" / "Lora" / f"{name}.safetensors", seed=seed, strength=0.2)
    config = root / "workers.yaml"
    config.write_text("min_replicas: 2\ncpus_per_replica: 0.5\nmodels_per_replica: 1\n")
    flags = ["--api", "--api-auth", "alice:alice-pw,bob:bob-pw", "--queue-per-user", str(BURST), "--workers", "ray", "--workers-config", str(config), "--models-dir", str(root / "models"),
             "--outdir", str(root / "outputs"), "--offline", "--precision", "fp32"]
    with running_app(*flags, env={"ZOO_SETTINGS_FILE": str(root / "config.json")}) as live:
        try:
            assert live.backend.workers is not None, "the workers did not start"
            live.titles = {t.split(" ")[0]: t for t in live.backend.checkpoint_titles()}
            yield live
        finally:
            from modules.workers.start import stop_workers
            stop_workers(live.backend)


def txt2img(app, checkpoint: str, task_id: str | None = None, steps: int = 4, seed: int = 11, auth=ALICE, **extra):
    body = {"prompt": PROMPT, "steps": steps, "width": 32, "height": 32, "seed": seed, "sampler_name": "Euler",
            "override_settings": {"sd_model_checkpoint": app.titles[checkpoint]},
            "force_task_id": task_id or uuid.uuid4().hex, **extra}
    return requests.post(f"{app.url}/sdapi/v1/txt2img", json=body, auth=auth, timeout=300)


def worker_of(app, task_id: str) -> dict:
    """The worker as the API's progress answer names it."""
    return requests.get(f"{app.url}/sdapi/v1/progress", params={"task_id": task_id}, auth=ALICE,
                        timeout=30).json()["worker"]


def pixels(answer) -> np.ndarray:
    import base64

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0]))).convert("RGB"))


def test_jobs_go_to_the_worker_that_holds_their_checkpoint(app):
    for checkpoint in ("shapes-a", "shapes-b"):  # warm-up: each checkpoint lands on a worker
        assert txt2img(app, checkpoint).status_code == 200
    placed: dict[str, set] = {"shapes-a": set(), "shapes-b": set()}
    for checkpoint in ["shapes-a", "shapes-b"] * 3:
        task = uuid.uuid4().hex
        answer = txt2img(app, checkpoint, task)
        assert answer.status_code == 200, answer.text
        worker = worker_of(app, task)
        assert worker["model_was_loaded"], (checkpoint, worker)
        placed[checkpoint].add(worker["replica"])
    assert len(placed["shapes-a"]) == 1 and len(placed["shapes-b"]) == 1
    assert placed["shapes-a"] != placed["shapes-b"]
    listed = {w["replica"]: w for w in app.backend.workers.replicas()}
    (a,), (b,) = placed["shapes-a"], placed["shapes-b"]
    assert listed[a]["models"] == [app.titles["shapes-a"]] and listed[b]["models"] == [app.titles["shapes-b"]]
    assert listed[a]["device"] == "cpu"
    from modules.ui.models_tab import workers_table
    assert {row[0] for row in workers_table(app.backend)["data"]} >= {a, b}  # the Models tab's Workers table


def test_a_users_burst_lets_another_users_job_go_at_the_next_free_place(app):
    """Alice sends 8 jobs at once, then Bob one, all for one checkpoint: the front end's one fair line (a place per
    worker) hands Bob's job to the workers at the next place that frees, ahead of Alice's waiting jobs."""
    from modules import owners

    line = app.backend.workers.line
    assert line.places == 2 and line.holding == 0
    answers: dict[str, requests.Response] = {}

    def send(task: str, auth) -> threading.Thread:
        thread = threading.Thread(target=lambda: answers.update({task: txt2img(app, "shapes-a", task, steps=60,
                                                                               seed=len(answers), auth=auth)}))
        thread.start()
        return thread

    alices = [uuid.uuid4().hex for _ in range(BURST)]
    threads = [send(task, ALICE) for task in alices]
    wait_for(lambda: line.waiting_for(owners.user("alice")) >= BURST - 3, "Alice's burst to wait in the front end")
    bobs = uuid.uuid4().hex
    threads.append(send(bobs, BOB))
    wait_for(lambda: line.waiting_for(owners.user("bob")) == 1, "Bob's job to wait in the front end")
    alice_waiting = line.waiting_for(owners.user("alice"))  # none of these may go before Bob's
    assert alice_waiting >= BURST - 4
    for thread in threads:
        thread.join(300)
    assert all(answers[t].status_code == 200 for t in [*alices, bobs]), [answers[t].text for t in answers]
    bob = app.backend.jobs.get(bobs)
    alice_jobs = [app.backend.jobs.get(t) for t in alices]
    ahead = [j for j in alice_jobs if j.started_at < bob.started_at]
    # Only Alice's jobs that had a place when Bob's job came (one running, one beside it in that worker's line)
    # or had finished already: none of her waiting ones.
    assert len(ahead) <= BURST - alice_waiting, sorted(j.started_at - bob.started_at for j in alice_jobs)
    assert line.holding == 0 and line.waiting == 0


def test_a_workers_picture_equals_the_local_runs(app):
    task = uuid.uuid4().hex
    remote = txt2img(app, "shapes-a", task, steps=6, seed=4242)
    assert remote.status_code == 200 and app.backend.jobs.get(task).worker
    pool, app.backend.workers = app.backend.workers, None  # --workers local: this process runs the job
    try:
        local_task = uuid.uuid4().hex
        local = txt2img(app, "shapes-a", local_task, steps=6, seed=4242)
        assert local.status_code == 200 and app.backend.jobs.get(local_task).worker is None
    finally:
        app.backend.workers = pool
        app.backend.manager.unload_all()
    remote_pixels, local_pixels = pixels(remote), pixels(local)
    assert remote_pixels.shape == (32, 32, 3) and remote_pixels.std() > 5  # a picture, not a flat colour
    assert np.array_equal(remote_pixels, local_pixels)
    info = remote.json()["info"]
    assert "shapes-a" in info  # the infotext names the checkpoint, as locally


def test_two_lora_sets_on_one_checkpoint_go_where_it_is_and_draw_as_locally(app):
    """Jobs with LoRA set "ink" and set "film" on shapes-a: all go to the worker holding shapes-a (one checkpoint
    loaded there, not one per set), the second job of each set finds its adapters attached, and every picture
    equals the local run's for the same seed."""
    prompts = {name: f"{PROMPT} <lora:{name}:1>" for name in LORAS}
    remote: dict[str, list] = {name: [] for name in LORAS}
    assert txt2img(app, "shapes-a").status_code == 200  # shapes-a held somewhere, whichever tests ran before
    for name in ["ink", "film", "ink", "film"]:
        task = uuid.uuid4().hex
        answer = txt2img(app, "shapes-a", task, steps=6, seed=99, prompt=prompts[name])
        assert answer.status_code == 200, answer.text
        assert "Lora hashes" in answer.json()["info"]
        remote[name].append((pixels(answer), worker_of(app, task)))
    workers = [worker for runs in remote.values() for _, worker in runs]
    assert len({w["replica"] for w in workers}) == 1 and all(w["model_was_loaded"] for w in workers), workers
    for runs in remote.values():
        assert [worker["loras_were_attached"] for _, worker in runs] == [False, True]
        assert np.array_equal(runs[0][0], runs[1][0])
    pool, app.backend.workers = app.backend.workers, None  # --workers local: this process runs the jobs
    try:
        local = {name: pixels(txt2img(app, "shapes-a", steps=6, seed=99, prompt=prompts[name])) for name in LORAS}
    finally:
        app.backend.workers = pool
        app.backend.manager.unload_all()
    for name in LORAS:
        assert np.array_equal(remote[name][0][0], local[name]), name
    assert not np.array_equal(local["ink"], local["film"])  # two sets, two pictures
    listed = next(w for w in pool.replicas() if w["replica"] == workers[0]["replica"])
    assert listed["models"] == [app.titles["shapes-a"]]
    assert listed["lora_sets"] == {app.titles["shapes-a"]: ["ink", "film"]}  # least recently used first
    from modules.ui.models_tab import workers_table
    row = next(r for r in workers_table(app.backend)["data"] if r[0] == listed["replica"])
    assert row[5] == f"{app.titles['shapes-a']}: ink, film"  # the Models tab's Workers table


def test_the_uis_skip_and_interrupt_reach_the_worker(app):
    session = requests.Session()
    assert session.get(app.url + "/", timeout=30).status_code == 200
    config = session.get(f"{app.url}/config", timeout=30).json()
    generate = gradio_raw.event_of(config, "txt2img_generate")
    known = {j.id for j in app.backend.jobs._jobs.values()}
    data = endpoint_data(app.url, "txt2img", [app.titles["shapes-b"], PROMPT, "", "Euler", 150, 7, 64, 64, 5, 20, 1],
                         session=session)
    threading.Thread(target=lambda: gradio_raw.call(app.url, session, generate, data), daemon=True).start()
    job = wait_for(lambda: next((j for j in app.backend.jobs.active() if j.id not in known and j.worker
                                 and j.step >= 2), None), "the UI job to run on a worker")
    gradio_raw.call(app.url, session, gradio_raw.event_of(config, "txt2img_skip"), [])  # the next batch, there
    wait_for(lambda: job.batch_index >= 1 and job.step >= 1, "Skip to reach the worker", timeout=30)
    assert job.active
    gradio_raw.call(app.url, session, gradio_raw.event_of(config, "txt2img_interrupt"), [])
    wait_for(lambda: not job.active, "the UI job to stop", timeout=30)
    assert job.state == "interrupted" and job.batch_count == 20
    wait_for(lambda: all(job.id not in w["running"] for w in app.backend.workers.replicas()), "the worker to stop it", 10)


def test_a_worker_killed_mid_job_loses_no_accepted_job(app):
    tasks = [uuid.uuid4().hex for _ in range(3)]
    answers: dict[str, requests.Response] = {}
    threads = [threading.Thread(target=lambda t=t: answers.update({t: txt2img(app, "shapes-a", t, steps=120)}))
               for t in tasks]
    for thread in threads:
        thread.start()
    job = wait_for(lambda: next((j for t in tasks if (j := app.backend.jobs.get(t)) is not None and j.worker
                                 and j.step >= 3), None), "a job to run on a worker")
    victim = next(w for w in app.backend.workers.replicas() if w["replica"] == job.worker)
    os.kill(victim["pid"], signal.SIGKILL)
    for thread in threads:
        thread.join(240)
    for task in tasks:  # each accepted job finished, or failed saying its worker stopped
        answer = answers[task]
        assert answer.status_code == 200 or "worker" in answer.text, (answer.status_code, answer.text)
        if answer.status_code == 200:
            assert pixels(answer).std() > 5
    assert app.backend.workers.retries >= 1  # the killed job had no image yet: run again on the other worker
    assert answers[job.id].status_code == 200 or app.backend.jobs.get(job.id).state == "failed"
    for checkpoint in ("shapes-a", "shapes-b"):  # the next jobs succeed (Serve replaces the dead worker)
        answer = txt2img(app, checkpoint)
        assert answer.status_code == 200, answer.text
        assert pixels(answer).std() > 5


def test_an_unreachable_cluster_is_one_line_and_require_workers_exits(tmp_path):
    closed = _closed_port()
    command = [sys.executable, "webui.py", "--nowebui", "--workers", "ray", "--ray-address", f"127.0.0.1:{closed}",
               "--require-workers", "--models-dir", str(tmp_path / "models"), "--outdir", str(tmp_path / "out"),
               "--offline"]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ZOO_SETTINGS_FILE": str(tmp_path / "config.json")})
    assert done.returncode != 0
    assert f"cannot reach Ray at 127.0.0.1:{closed}" in done.stderr and "--require-workers" in done.stderr
    assert time.monotonic() - started < 100


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_require_workers_an_unreachable_cluster_leaves_jobs_local(capsys):
    from types import SimpleNamespace

    from modules import cmd_args
    from modules.workers.start import start_workers

    args = cmd_args.parse_args(["--workers", "ray", "--ray-address", f"127.0.0.1:{_closed_port()}"])
    backend = SimpleNamespace(workers=None, config=None)
    start_workers(backend, args)
    assert backend.workers is None
    line = capsys.readouterr().out.strip()
    assert "cannot reach Ray at 127.0.0.1:" in line and line.endswith("running jobs in this process instead")
    assert len(line.splitlines()) == 1
