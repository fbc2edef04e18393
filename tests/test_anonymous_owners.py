"""Owners the client cannot choose: an anonymous browser is known by a session cookie the server issued
(never Gradio's session_hash), so it can neither name an API user nor another browser; an API caller's
job-checkpoint override never becomes the default for later jobs."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests

from modules.security import ui_session
from tests import gradio_raw
from tests.inprocess_app import endpoint_data, running_app
from tests.waiting import wait_for

BOT = ("bot", "Bot-pw-3")
LONG = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 150, "n_iter": 20, "sampler_name": "Euler a",
        "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("anonymous-owners")
    flags = ["--api", "--api-auth", f"{BOT[0]}:{BOT[1]}", "--models-dir", str(models_dir),
             "--outdir", str(root / "outputs"), "--skip-load-model-at-start", "--offline"]
    with running_app(*flags, env={"ZOO_SETTINGS_FILE": str(root / "config.json")}) as live:
        yield live


def browser(app) -> requests.Session:
    session = requests.Session()
    assert session.get(app.url + "/", timeout=30).status_code == 200
    return session


def interrupt_event(app, session):
    return gradio_raw.event_of(session.get(f"{app.url}/config", timeout=30).json(), "txt2img_interrupt")


def running(app, job_id: str):
    return wait_for(lambda: (j := app.backend.jobs.get(job_id)) is not None and j.state == "running" and j.step >= 1
                    and j, f"{job_id} to run")


def test_the_server_issues_the_session_cookie_and_replaces_a_made_up_one(app):
    first = requests.get(app.url + "/", timeout=30)
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{ui_session.COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    value = first.cookies[ui_session.COOKIE]
    assert ui_session.session_id(value) is not None
    again = requests.get(app.url + "/", cookies={ui_session.COOKIE: value}, timeout=30)
    assert "set-cookie" not in again.headers  # a cookie this server issued is kept
    session_part, signature = value.split(".")
    for forged in ("bot", f"bot.{signature}", f"{session_part}x.{signature}", value + "0"):
        assert ui_session.session_id(forged) is None
        answer = requests.get(app.url + "/", cookies={ui_session.COOKIE: forged}, timeout=30)
        assert answer.cookies[ui_session.COOKIE] != forged  # replaced by a new one


def test_an_anonymous_browser_cannot_stop_an_api_users_job_by_picking_their_name(app):
    task_id = f"bot-{uuid.uuid4().hex[:8]}"
    answers = {}
    thread = threading.Thread(target=lambda: answers.update(bot=requests.post(
        f"{app.url}/sdapi/v1/txt2img", json={**LONG, "force_task_id": task_id}, auth=BOT, timeout=300)))
    thread.start()
    job = running(app, task_id)
    assert job.owner == "user:bot"
    stranger = browser(app)
    event = interrupt_event(app, stranger)
    for session_hash in ("bot", "user:bot", task_id):
        gradio_raw.call(app.url, stranger, event, [], session_hash=session_hash)
    bare = requests.Session()  # no cookie at all, as a raw script sends
    gradio_raw.call(app.url, bare, event, [], session_hash="bot")
    step = job.step
    wait_for(lambda: job.step > step + 1, "bot's job to go on")
    assert job.state == "running" and not job.interrupt_requested
    assert requests.post(f"{app.url}/sdapi/v1/interrupt", auth=BOT, timeout=30).json() == {"interrupted": 1}
    thread.join(120)
    assert answers["bot"].status_code == 200


def test_a_browsers_interrupt_stops_its_own_job_only(app):
    owner, other = browser(app), browser(app)
    known = {j.id for j in app.backend.jobs._jobs.values()}
    config = owner.get(f"{app.url}/config", timeout=30).json()
    generate = gradio_raw.event_of(config, "txt2img_generate")
    data = endpoint_data(app.url, "txt2img", ["tiny-sd15", "a red circle", "", "Euler a", 150, 7, 64, 64, 5, 20, 1],
                         session=owner)
    threading.Thread(target=lambda: gradio_raw.call(app.url, owner, generate, data, session_hash="shared"),
                     daemon=True).start()
    job = wait_for(lambda: next((j for j in app.backend.jobs.active() if j.id not in known
                                 and j.state == "running"), None), "the UI job to run")
    assert job.owner.startswith("ui-session:")
    gradio_raw.call(app.url, other, interrupt_event(app, other), [], session_hash="shared")  # same hash, other cookie
    time.sleep(0.5)
    assert job.state == "running" and not job.interrupt_requested
    gradio_raw.call(app.url, owner, interrupt_event(app, owner), [])
    wait_for(lambda: not job.active, "the UI job to stop")
    assert job.state == "interrupted"


def test_a_jobs_checkpoint_override_never_becomes_the_default(models_dir, tmp_path):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config
    from tests.test_api_tasks import start_server

    backend = Backend(BackendConfig(models_dir=models_dir, outdir=tmp_path / "outputs", cache_dir=tmp_path / "cache",
                                    devices=device_config("cpu"), offline=True))
    server = start_server(backend, tmp_path)  # no saved default, no --ckpt
    try:
        options = f"{server.url}/sdapi/v1/options"
        default = requests.get(options, timeout=30).json()["sd_model_checkpoint"]
        # a plain txt2img model (other tests of the session may have added inpainting, SDXL ... ones)
        other = next(t for t in backend.checkpoint_titles()
                     if t != default and t.split(" ")[0] in ("tiny-sd15", "tiny-sd15-single.safetensors"))
        body = {**LONG, "steps": 1, "n_iter": 1, "override_settings": {"sd_model_checkpoint": other}}
        answer = requests.post(f"{server.url}/sdapi/v1/txt2img", json=body, timeout=300)
        assert answer.status_code == 200, answer.text
        assert other in [m["title"] for m in backend.cached_models()]  # it was loaded for that job
        assert requests.get(options, timeout=30).json()["sd_model_checkpoint"] == default
        body = {**body, "override_settings": {}}
        info = requests.post(f"{server.url}/sdapi/v1/txt2img", json=body, timeout=300).json()["info"]
        assert default.split(" ")[0] in info and other.split(" ")[0] not in info  # the next job got the default
    finally:
        server.stop()
