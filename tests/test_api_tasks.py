"""Per-task progress, interrupt and skip over HTTP, with jobs running at the same time, and users kept apart.

The API runs in this process (uvicorn in a thread over the shared `backend` fixture): real HTTP and
real concurrency, without starting another Python."""
from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image

from modules import cmd_args
from tests.app_process import free_port
from tests.waiting import wait_for

ALICE, BOB = ("alice", "pw-alice"), ("bob", "pw-bob")
SMALL = {"prompt": "a red circle", "width": 64, "height": 64, "sampler_name": "Euler a",
         "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}
LONG = {**SMALL, "steps": 150, "n_iter": 20}  # minutes of work: only ever run until it is interrupted


def start_server(backend, tmp_path, *flags):
    from modules.api.server import serve_api_only

    args = cmd_args.parse_args(["--nowebui", "--port", str(free_port()), *flags])
    _, server = serve_api_only(backend, args, block=False, settings_file=tmp_path / "config.json")
    return server


@pytest.fixture(scope="module")
def open_api(backend, tmp_path_factory):
    server = start_server(backend, tmp_path_factory.mktemp("open-api"))
    yield server.url + "/sdapi/v1"
    server.stop()


@pytest.fixture(scope="module")
def users_api(backend, tmp_path_factory):
    server = start_server(backend, tmp_path_factory.mktemp("users-api"), "--api-auth",
                          f"{ALICE[0]}:{ALICE[1]},{BOB[0]}:{BOB[1]}")
    yield server.url + "/sdapi/v1"
    server.stop()


@pytest.fixture
def pool():
    with ThreadPoolExecutor(4) as pool:
        yield pool


def new_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def post(url, json_body=None, auth=None, timeout=300, **params):
    response = requests.post(url, json=json_body, auth=auth, params=params, timeout=timeout)
    assert response.status_code == 200, response.text
    return response.json()


def progress(base, task_id=None, auth=None, skip_current_image=True) -> dict:
    params = {"skip_current_image": skip_current_image, **({"task_id": task_id} if task_id else {})}
    response = requests.get(f"{base}/progress", params=params, auth=auth, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def running_at_step(base, task_id, step=1, auth=None):
    def check():
        p = progress(base, task_id, auth)
        return p if p["task_state"] == "running" and p["state"]["sampling_step"] >= step else None
    return wait_for(check, f"{task_id} to reach step {step}")


def test_progress_and_interrupt_by_task_id_leave_the_other_task_alone(open_api, pool):
    long_id, short_id = new_id(), new_id()
    long_job = pool.submit(post, f"{open_api}/txt2img", {**LONG, "task_id": long_id, "seed": 1})
    running = running_at_step(open_api, long_id, step=6)  # a preview exists after step 5
    assert running["state"]["sampling_steps"] == 150 and running["state"]["job_count"] == 20
    assert 0 < running["progress"] < 1 and running["eta_relative"] > 0
    with_image = progress(open_api, long_id, skip_current_image=False)
    with Image.open(io.BytesIO(base64.b64decode(with_image["current_image"]))) as preview:
        assert preview.size == (64, 64)

    short_job = pool.submit(post, f"{open_api}/txt2img", {**SMALL, "steps": 3, "n_iter": 2, "seed": 7,
                                                          "force_task_id": short_id})
    queued = wait_for(lambda: (p := progress(open_api, short_id))["task_state"] != "unknown" and p, "the second task")
    assert queued["task_state"] == "queued" and queued["progress"] == 0  # waits for the device
    assert queued["textinfo"] == "Waiting for the device"

    assert post(f"{open_api}/interrupt", {"task_id": long_id}) == {"interrupted": 1}
    long_info = json.loads(long_job.result(timeout=120)["info"])
    assert long_info["task_state"] == "interrupted"
    assert len(long_info["all_seeds"]) == 1  # the batch that was running is kept; the 19 others never start

    short = short_job.result(timeout=120)
    short_info = json.loads(short["info"])
    assert short_info["task_state"] == "done" and short_info["all_seeds"] == [7, 8]
    assert len(short["images"]) == 3  # the batch grid, then the two images
    done = progress(open_api, short_id)
    assert done["task_state"] == "done" and done["progress"] == 1 and done["textinfo"] == "Done"


def test_skip_by_task_id_drops_only_the_current_batch(open_api, pool):
    task_id = new_id()
    job = pool.submit(post, f"{open_api}/txt2img", {**SMALL, "steps": 150, "n_iter": 2, "seed": 3, "task_id": task_id})
    running_at_step(open_api, task_id, step=1)
    assert post(f"{open_api}/skip", task_id=task_id) == {"skipped": 1}  # task id in the query this time
    info = json.loads(job.result(timeout=120)["info"])
    assert info["task_state"] == "done" and info["all_seeds"] == [3, 4]  # batch 1 cut short, batch 2 in full


def test_without_a_task_id_and_without_logins_interrupt_stops_the_running_job(open_api, pool):
    task_id = new_id()
    job = pool.submit(post, f"{open_api}/txt2img", {**LONG, "task_id": task_id})
    running_at_step(open_api, task_id)
    assert progress(open_api)["state"]["sampling_steps"] == 150  # A1111's global progress shows it
    assert post(f"{open_api}/interrupt") == {"interrupted": 1}
    assert json.loads(job.result(timeout=120)["info"])["task_state"] == "interrupted"


def test_a_task_id_in_use_is_refused(open_api):
    task_id = new_id()
    post(f"{open_api}/txt2img", {**SMALL, "steps": 3, "task_id": task_id})
    again = requests.post(f"{open_api}/txt2img", json={**SMALL, "steps": 3, "task_id": task_id}, timeout=60)
    assert again.status_code == 409 and again.json()["field"] == "task_id"
    unknown = requests.post(f"{open_api}/interrupt", json={"task_id": "no-such-task"}, timeout=30)
    assert unknown.status_code == 404 and unknown.json()["field"] == "task_id"
    assert progress(open_api, "no-such-task")["task_state"] == "unknown"


def test_users_see_and_stop_only_their_own_jobs(users_api, pool):
    alice_task = new_id()
    job = pool.submit(post, f"{users_api}/txt2img", {**LONG, "task_id": alice_task}, auth=ALICE)
    running_at_step(users_api, alice_task, auth=ALICE)

    # Bob sees nothing of Alice's job, and his interrupts do not reach it, with or without its id.
    assert progress(users_api, auth=BOB)["state"]["job_count"] == 0
    assert progress(users_api, alice_task, auth=BOB)["task_state"] == "unknown"
    assert post(f"{users_api}/interrupt", auth=BOB) == {"interrupted": 0}
    assert post(f"{users_api}/skip", auth=BOB) == {"skipped": 0}
    by_id = requests.post(f"{users_api}/interrupt", json={"task_id": alice_task}, auth=BOB, timeout=30)
    assert by_id.status_code == 404
    step = progress(users_api, alice_task, auth=ALICE)["state"]["sampling_step"]
    wait_for(lambda: progress(users_api, alice_task, auth=ALICE)["state"]["sampling_step"] > step, "more steps")
    assert not job.done()

    # Alice's own progress and interrupt, without a task id, find her job.
    assert progress(users_api, auth=ALICE)["state"]["sampling_steps"] == 150
    assert post(f"{users_api}/interrupt", auth=ALICE) == {"interrupted": 1}
    assert json.loads(job.result(timeout=120)["info"])["task_state"] == "interrupted"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_api_only_over_https(backend, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    server = start_server(backend, tmp_path, "--tls-keyfile", str(key), "--tls-certfile", str(cert))
    try:
        assert server.url.startswith("https://")
        response = requests.get(f"{server.url}/sdapi/v1/samplers", verify=False, timeout=30,
                                headers={"Connection": "close"})  # so stopping need not wait for it
        assert response.status_code == 200 and "Euler a" in [s["name"] for s in response.json()]
    finally:
        server.stop()
