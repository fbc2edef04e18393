"""Load on loopback: 8 clients send 200 small txt2img jobs through /sdapi/v1 while GAN and Latent Explorer
calls go through the Gradio API. Every job completes or gets a clear "busy" answer (503 with a JSON
message) once --queue-limit jobs wait; the device never runs two jobs at once; and the server's memory
comes back to where it was after a warm-up.

Marked `load` so it can be picked (`-m load`) or left out (`-m "not load"`) by hand; CI runs it, as it runs
every test. Jobs are 32 px and 1 step, so the whole file takes well under a minute on two busy cores."""
from __future__ import annotations

import itertools
import json
import shutil
import threading
import time

import psutil
import pytest
import requests

from tests.app_process import AppProcess
from tests.zoo_fixtures import make_tiny_beta_vae, make_tiny_gan

pytestmark = [pytest.mark.load, pytest.mark.timeout(300)]

CLIENTS = 8
JOBS = 200
WARM_UP_JOBS = 100
QUEUE_LIMIT = 4  # below the 7 that 8 clients can keep waiting, so some get the busy answer
TINY = {"prompt": "a red circle", "width": 32, "height": 32, "steps": 1, "sampler_name": "Euler a",
        "save_images": False, "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}
RSS_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    models = root / "models"
    shutil.copytree(models_dir / "Stable-diffusion" / "tiny-sd15", models / "Stable-diffusion" / "tiny-sd15")
    make_tiny_gan(models / "GAN" / "tiny-gan.safetensors")
    make_tiny_beta_vae(models / "Latent" / "tiny-vae.safetensors")
    flags = ["--api", "--queue-limit", str(QUEUE_LIMIT), "--models-dir", str(models), "--outdir",
             str(root / "outputs"), "--skip-load-model-at-start", "--offline"]
    with AppProcess(*flags, env={"ZOO_SETTINGS_FILE": str(root / "config.json")}) as live:
        deadline = time.time() + 60
        while not any(line.startswith("API docs: ") for line in live.lines) and time.time() < deadline:
            time.sleep(0.1)  # Gradio says "Running on" just before the API is mounted
        yield live


def txt2img_jobs(url: str, count: int) -> list[str]:
    """`count` jobs sent by CLIENTS threads, each job once: "done", "busy", or what went wrong."""
    numbers, outcomes, lock = itertools.count(), [], threading.Lock()

    def client():
        with requests.Session() as session:
            while True:
                with lock:
                    n = next(numbers)
                if n >= count:
                    return
                response = session.post(f"{url}/sdapi/v1/txt2img", json={**TINY, "seed": n}, timeout=120)
                outcomes.append(outcome(response))
                if response.status_code == 503:
                    time.sleep(float(response.headers["Retry-After"]) / 5)  # back off a little

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    return outcomes


def outcome(response: requests.Response) -> str:
    if response.status_code == 200:
        answer = response.json()
        return "done" if len(answer["images"]) == 1 and json.loads(answer["info"])["all_seeds"] else "no image"
    if response.status_code == 503:
        error = response.json()
        busy = error["error"] == "Service Unavailable" and error["detail"].startswith("busy: ")
        return "busy" if busy and "--queue-limit" in error["detail"] else f"unclear 503: {error}"
    return f"{response.status_code}: {response.text[:300]}"


def gradio_jobs(url: str, count: int) -> list[str]:
    """GAN samples and Latent Explorer decodes through the Gradio API (one client, as a browser tab or a
    script has), alternately, one after another."""
    from gradio_client import Client

    client, outcomes = Client(url, verbose=False), []
    for i in range(count):
        try:
            if i % 2 == 0:
                gallery, message, _infotext = client.predict("tiny-gan", "1,2", 1.0, "circle", 1, None, 1,
                                                             api_name="/gan_sample")
                outcomes.append(f"gan_sample {'images' if len(gallery) >= 2 else 'no images'} {message!r}")
            else:
                image, message, *_sliders_and_latent = client.predict(api_name="/latent_decode")
                outcomes.append(f"latent_decode {'image' if image else 'nothing'} {message!r}")
        except Exception as e:  # noqa: BLE001 - reported by the test
            outcomes.append(f"{type(e).__name__}: {e}")
    return outcomes


def run_load(url: str, jobs: int, gradio_calls: int) -> tuple[list[str], list[str]]:
    gradio: list[str] = []
    side = threading.Thread(target=lambda: gradio.extend(gradio_jobs(url, gradio_calls)))
    side.start()
    api = txt2img_jobs(url, jobs)
    side.join(240)
    return api, gradio


def queue(url: str) -> dict:
    return requests.get(f"{url}/sdapi/v1/queue", timeout=30).json()


def settled_rss(process: psutil.Process, url: str) -> int:
    deadline = time.time() + 30
    while (state := queue(url))["running"] or state["waiting"]:
        assert time.time() < deadline, state
        time.sleep(0.1)
    time.sleep(1.0)
    return process.memory_info().rss


def test_under_load_every_job_completes_or_is_told_busy_and_memory_comes_back(app):
    server = psutil.Process(app.process.pid)
    run_load(app.url, WARM_UP_JOBS, 4)  # loads the models, fills caches and thread pools
    before = settled_rss(server, app.url)
    started = time.time()
    api, gradio = run_load(app.url, JOBS, 20)
    seconds = time.time() - started
    after = settled_rss(server, app.url)

    assert len(api) == JOBS
    unexpected = [o for o in api if o not in ("done", "busy")]
    assert not unexpected, unexpected[:5]
    done, busy = api.count("done"), api.count("busy")
    assert done >= JOBS // 4 and busy >= 1, (done, busy)
    assert gradio == ["gan_sample images ''", "latent_decode image ''"] * 10, gradio
    state = queue(app.url)
    assert state["limit"] == QUEUE_LIMIT and state["peak_running"] == 1, state  # never two jobs on the device
    assert after <= before * (1 + RSS_TOLERANCE), f"RSS {before / 2**20:.0f} MB -> {after / 2**20:.0f} MB"
    print(f"load: {done} done, {busy} busy in {seconds:.1f} s; RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MB")
