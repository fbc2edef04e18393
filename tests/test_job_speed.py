"""The job's speed (it/s, as A1111's bar shows) and an ETA from it, over the real API; and a job whose estimate
is over --max-job-seconds refused before it starts, naming the estimate."""
from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from modules import cmd_args
from modules.jobs import Job
from modules.ui.common import progress_html
from tests.test_api_tasks import LONG, SMALL, post, progress, running_at_step, start_server


@pytest.fixture(scope="module")
def api(backend, tmp_path_factory):
    server = start_server(backend, tmp_path_factory.mktemp("speed-api"))
    yield server.url + "/sdapi/v1"
    server.stop()


def test_progress_says_its_speed_and_the_eta_falls(api):
    task_id = f"speed-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(1) as pool:
        # One batch of 150 steps: between step 3 and step 100 the steps left fall by two thirds, far more than
        # the measured speed wanders on a busy machine.
        job = pool.submit(post, f"{api}/txt2img", {**LONG, "n_iter": 1, "task_id": task_id, "seed": 2})
        first = running_at_step(api, task_id, step=3)
        later = running_at_step(api, task_id, step=100)
        post(f"{api}/interrupt", {"task_id": task_id})
        job.result(timeout=120)
    for answer in (first, later):
        assert answer["textinfo"].endswith(("it/s", "s/it")), answer["textinfo"]
        assert answer["eta_relative"] > 0
    assert later["eta_relative"] < first["eta_relative"]


def test_the_progress_bar_shows_the_speed():
    job = Job("txt2img")
    job.start(1, 20)
    job.report_step(1)
    job.first_step_at -= 2.0  # the second step ends two seconds after the first: 0.5 it/s is 2.00 s/it
    job.report_step(2)
    bar = progress_html(job)
    assert "2.00 s/it" in bar or "1.99 s/it" in bar, bar
    assert "ETA 36 s" in bar or "ETA 35 s" in bar, bar  # 18 steps left at 2 s each


def test_a_job_estimated_over_the_limit_is_refused_with_the_estimate(api, backend):
    post(f"{api}/txt2img", {**SMALL, "steps": 4, "seed": 5})  # the checkpoint's speed is learnt from this job
    limit = backend.config.max_job_seconds
    backend.config.max_job_seconds = 0.01
    try:
        response = requests.post(f"{api}/txt2img", json={**SMALL, "steps": 150, "batch_size": 2, "n_iter": 20},
                                 timeout=60)
    finally:
        backend.config.max_job_seconds = limit
    assert 400 <= response.status_code < 500, response.text
    text = response.text
    assert "would take about" in text and "--max-job-seconds" in text, text


def test_the_flag_parses_and_refuses_nonsense():
    assert cmd_args.parse_args([]).max_job_seconds == 3600
    assert cmd_args.parse_args(["--max-job-seconds", "60"]).max_job_seconds == 60
    for bad in ("0", "-5", "inf", "nan"):
        with pytest.raises(SystemExit):
            cmd_args.parse_args(["--max-job-seconds", bad])
