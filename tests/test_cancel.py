"""A client that cancels or goes away mid-generation frees its place: its job stops at the next step (or
leaves the queue without running), and the next job runs. Through the Gradio UI endpoint (gradio_client's
cancel, a closed event stream) and through /sdapi/v1 (a closed connection)."""
from __future__ import annotations

import http.client
import json
import threading
import time
import uuid

import pytest
import requests

from modules.jobs import Job
from tests.inprocess_app import endpoint_data, running_app
from tests.waiting import wait_for

STEP_SECONDS = 0.1  # each sampling step is made this slow, so "stops at the next step" can be seen
LONG_STEPS = 150  # 15 s or more: a job that is only ever run until it is cancelled
SMALL = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 2, "sampler_name": "Euler a",
         "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}
LONG = {**SMALL, "steps": LONG_STEPS}
HOLDER = "holder-"  # jobs whose id starts so stay on their first step until interrupted


def ui_args(steps: int) -> list:
    return ["tiny-sd15", "a red circle", "", "Euler a", steps, 7, 64, 64, 5, 1, 1]


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cancel")
    steps_run: dict[str, int] = {}  # job id -> the last step it reached
    real_report_step = Job.report_step

    def slow_step(job, step):
        time.sleep(STEP_SECONDS)
        steps_run[job.id] = step
        real_report_step(job, step)
        while job.id.startswith(HOLDER) and step >= 1 and not job.interrupt_requested:
            time.sleep(STEP_SECONDS)  # a holder keeps the device until it is interrupted, however slow the machine

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Job, "report_step", slow_step)
        flags = ["--api", "--models-dir", str(models_dir), "--outdir", str(root / "outputs"),
                 "--skip-load-model-at-start", "--offline"]
        with running_app(*flags, env={"ZOO_SETTINGS_FILE": str(root / "config.json")}) as live:
            live.steps_run = steps_run
            yield live


def new_running_job(app, known: set[str], min_step: int = 2) -> Job:
    """The txt2img job that is not in `known` once it has run `min_step` steps."""
    def find():
        jobs = [j for j in app.backend.jobs.active() if j.id not in known and j.state == "running"]
        return jobs[0] if jobs and app.steps_run.get(jobs[0].id, 0) >= min_step else None
    return wait_for(find, what="a running job")


def known_jobs(app) -> set[str]:
    return {job.id for job in app.backend.jobs._jobs.values()}


def assert_stopped_soon(app, job: Job, step_at_cancel: int) -> None:
    wait_for(lambda: not job.active, timeout=30, what=f"job {job.id} to stop")
    ran = app.steps_run.get(job.id, 0)
    assert job.state == "interrupted", job.state
    assert ran < LONG_STEPS and ran - step_at_cancel <= 40, (step_at_cancel, ran)
    assert app.backend.manager.jobs_on_device == 0 and app.backend.manager.device_lock.waiting == 0


def next_job_runs(app) -> None:
    response = requests.post(app.url + "/sdapi/v1/txt2img", json={**SMALL, "seed": 11}, timeout=120)
    assert response.status_code == 200 and len(response.json()["images"]) == 1


def test_a_ui_client_that_cancels_stops_its_job_and_the_next_one_runs(app):
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    known = known_jobs(app)
    handle = client.submit(*ui_args(LONG_STEPS), api_name="/txt2img")
    job = new_running_job(app, known)
    step_at_cancel = app.steps_run[job.id]
    handle.cancel()
    assert_stopped_soon(app, job, step_at_cancel)
    gallery, _progress, message, _infotext = client.predict(*ui_args(2), api_name="/txt2img")
    assert message == "" and len(gallery) == 1


def open_event_stream(app, endpoint: str, data: list) -> http.client.HTTPConnection:
    """Start a Gradio call and open its event stream, as a browser tab does; closing it is the tab going away."""
    data = endpoint_data(app.url, endpoint, data)
    started = requests.post(f"{app.url}/gradio_api/call/{endpoint}", json={"data": data}, timeout=30)
    connection = http.client.HTTPConnection("127.0.0.1", int(app.url.rsplit(":", 1)[1]), timeout=30)
    connection.request("GET", f"/gradio_api/call/{endpoint}/{started.json()['event_id']}")
    assert connection.getresponse().status == 200
    return connection


def test_a_ui_client_that_goes_away_stops_its_job_and_the_next_one_runs(app):
    known = known_jobs(app)
    stream = open_event_stream(app, "txt2img", ui_args(LONG_STEPS))
    job = new_running_job(app, known)
    step_at_close = app.steps_run[job.id]
    stream.close()
    assert_stopped_soon(app, job, step_at_close)
    next_job_runs(app)


def test_an_api_client_that_goes_away_stops_its_job_and_the_next_one_runs(app):
    task_id = f"gone-{uuid.uuid4().hex[:8]}"
    holder: dict = {}

    def step_when_running():
        job = app.backend.jobs.get(task_id)
        return job if job is not None and app.steps_run.get(task_id, 0) >= 2 else None

    def client():  # gives up after a second of waiting: its connection closes
        with requests.Session() as session:
            try:
                session.post(app.url + "/sdapi/v1/txt2img", json={**LONG, "force_task_id": task_id}, timeout=(10, 1.5))
            except requests.exceptions.ReadTimeout:
                holder["timed_out"] = True

    thread = threading.Thread(target=client)
    thread.start()
    job = wait_for(step_when_running, what="the API job to run")
    thread.join(30)
    assert holder.get("timed_out")
    assert_stopped_soon(app, job, app.steps_run[task_id])
    next_job_runs(app)


def test_a_queued_client_that_goes_away_leaves_the_queue_without_running(app):
    """While one job holds the device, a UI client that cancels and an API client that goes away both
    give up their place in the queue at once; neither job ever starts."""
    from gradio_client import Client

    running_id = f"{HOLDER}{uuid.uuid4().hex[:8]}"
    answers: dict = {}
    holder = threading.Thread(target=lambda: answers.update(holder=requests.post(
        app.url + "/sdapi/v1/txt2img", json={**LONG, "force_task_id": running_id}, timeout=120)))
    holder.start()
    wait_for(lambda: app.steps_run.get(running_id, 0) >= 1, what="the first job to hold the device")
    lock = app.backend.manager.device_lock

    known = known_jobs(app)
    handle = Client(app.url, verbose=False).submit(*ui_args(2), api_name="/txt2img")
    wait_for(lambda: lock.waiting == 1, what="the UI job to queue")
    ui_job = next(j for j in app.backend.jobs.active() if j.id not in known)
    handle.cancel()
    wait_for(lambda: not ui_job.active and lock.waiting == 0, timeout=30, what="the UI job to leave the queue")

    queued_id = f"queued-{uuid.uuid4().hex[:8]}"
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(app.url + "/sdapi/v1/txt2img", json={**SMALL, "force_task_id": queued_id}, timeout=(10, 1.5))
    api_job = app.backend.jobs.get(queued_id)
    wait_for(lambda: not api_job.active and lock.waiting == 0, timeout=30, what="the API job to leave the queue")

    for job in (ui_job, api_job):
        assert job.state == "interrupted" and job.started_at is None and job.id not in app.steps_run
    assert app.backend.jobs.get(running_id).state == "running"  # the job on the device was not touched
    requests.post(app.url + "/sdapi/v1/interrupt", json={"task_id": running_id}, timeout=30)
    holder.join(60)
    assert answers["holder"].status_code == 200
    assert json.loads(answers["holder"].json()["info"])["task_state"] == "interrupted"
    next_job_runs(app)


LONG_BLOCK_SECONDS = 1.0  # each UNet block: one step of the tiny model takes 5 s, as a 2048² step would take minutes


@pytest.mark.parametrize("client", ["ui", "api"])
def test_a_client_that_leaves_during_a_long_step_stops_its_job_inside_that_step(app, client):
    """The step never ends in time on its own: the job must stop inside it, before the next UNet block."""
    from tests.slow_blocks import SlowBlocks

    unet = app.backend.manager.load("tiny-sd15").pipe.unet
    known = known_jobs(app)
    with SlowBlocks(unet, LONG_BLOCK_SECONDS) as slow:
        per_step = len(slow.blocks)
        if client == "ui":
            stream = open_event_stream(app, "txt2img", ui_args(LONG_STEPS))
            wait_for(lambda: slow.calls >= 1, what="the first block of the UI job")
            stream.close()
        else:  # gives up after 1.5 s: the first step is still running then
            with pytest.raises(requests.exceptions.ReadTimeout):
                requests.post(app.url + "/sdapi/v1/txt2img", json=LONG, timeout=(10, 1.5))
        job = next(j for j in app.backend.jobs._jobs.values() if j.id not in known)
        wait_for(lambda: not job.active, timeout=30, what="the job to stop")
    assert job.state == "interrupted" and app.steps_run.get(job.id, 0) == 0
    assert slow.calls < per_step, slow.calls  # stopped inside the first step, not at its end
    next_job_runs(app)
