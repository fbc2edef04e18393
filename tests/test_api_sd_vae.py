"""The sd_vae option (and override_settings.sd_vae): jobs decode with a VAE file of models/VAE instead of the
checkpoint's own; the cached pipeline keeps its VAE; the infotext and `info` name the VAE file."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.inprocess_app import app_client
from tests.test_latent_fixtures import latent_backend, latent_models_dir  # noqa: F401 - fixtures

VAE = "tiny-sd-vae.safetensors"
BASE = {"prompt": "a red circle", "seed": 5, "steps": 3, "width": 64, "height": 64, "sampler_name": "Euler",
        "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}


@pytest.fixture
def client(latent_backend, tmp_path):  # noqa: F811
    with app_client(latent_backend, tmp_path / "config.json") as client:
        yield client


def run(client, route="txt2img", **override):
    body = {**BASE, "override_settings": {**BASE["override_settings"], **override}}
    if route == "img2img":
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), "red").save(buffer, format="PNG")
        body.update(init_images=[base64.b64encode(buffer.getvalue()).decode()], denoising_strength=0.5)
    answer = client.post(f"/sdapi/v1/{route}", json=body)
    assert answer.status_code == 200, answer.text
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0]))).convert("RGB")).astype(int)
    return image, json.loads(answer.json()["info"])


@pytest.mark.parametrize("route", ["txt2img", "img2img"])
def test_a_vae_file_decodes_the_job_and_the_cached_pipeline_keeps_its_own(client, latent_backend, route):  # noqa: F811
    own_vae = latent_backend.manager.load("tiny-sd15").pipe.vae
    plain, plain_info = run(client, route)
    chosen, info = run(client, route, sd_vae=VAE)
    assert np.abs(plain - chosen).mean() > 1  # another decoder: another picture
    assert f"VAE: {VAE}" in info["infotexts"][0] and info["sd_vae_name"] == VAE
    assert "VAE:" not in plain_info["infotexts"][0] and plain_info["sd_vae_name"] is None
    assert latent_backend.manager.load("tiny-sd15").pipe.vae is own_vae
    assert np.array_equal(run(client, route)[0], plain)  # the next job without it: as before


def test_the_sd_vae_option_is_the_default_of_later_jobs(client):
    chosen, _ = run(client, sd_vae=VAE)
    assert client.post("/sdapi/v1/options", json={"sd_vae": VAE}).status_code == 200
    assert client.get("/sdapi/v1/options").json()["sd_vae"] == VAE
    assert np.array_equal(run(client)[0], chosen)
    assert client.post("/sdapi/v1/options", json={"sd_vae": "Automatic"}).status_code == 200


def test_an_unknown_vae_is_a_422_naming_it(client):
    answer = client.post("/sdapi/v1/txt2img", json={**BASE, "override_settings": {"sd_vae": "nope.safetensors"}})
    assert answer.status_code == 422 and "sd_vae" in answer.text and "nope" in answer.text
    assert client.post("/sdapi/v1/options", json={"sd_vae": "nope"}).status_code == 422
    # img2img checks it before the job waits, as txt2img does
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PNG")
    answer = client.post("/sdapi/v1/img2img", json={**BASE, "init_images": [base64.b64encode(buffer.getvalue()).decode()],
                                                    "override_settings": {"sd_vae": "nope.safetensors"}})
    assert answer.status_code == 422 and "sd_vae" in answer.text
