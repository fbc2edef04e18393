"""Options that change what a job makes, through the real API: samples_format and jpeg_quality (saved files,
with the infotext in the EXIF as A1111 writes it), eta_noise_seed_delta (ancestral samplers' noise), and
A1111's `info` keys (Processed.js()) in txt2img's and img2img's answers."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from modules.images import read_parameters
from tests.inprocess_app import app_client

BASE = {"prompt": "a red circle", "negative_prompt": "", "seed": 5, "steps": 3, "width": 64, "height": 64,
        "sampler_name": "Euler a", "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}
# Every key of A1111 v1.10.1's Processed.js().
A1111_INFO_KEYS = {
    "prompt", "all_prompts", "negative_prompt", "all_negative_prompts", "seed", "all_seeds", "subseed",
    "all_subseeds", "subseed_strength", "width", "height", "sampler_name", "cfg_scale", "steps", "batch_size",
    "restore_faces", "face_restoration_model", "sd_model_name", "sd_model_hash", "sd_vae_name", "sd_vae_hash",
    "seed_resize_from_w", "seed_resize_from_h", "denoising_strength", "extra_generation_params",
    "index_of_first_image", "infotexts", "styles", "job_timestamp", "clip_skip",
    "is_using_inpainting_conditioning", "version"}


@pytest.fixture
def client(backend, tmp_path):
    with app_client(backend, tmp_path / "config.json") as client:
        yield client


def picture(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB")).astype(int)


def test_info_has_every_key_a1111_gives(client):
    for route, extra in (("txt2img", {}), ("img2img", {"init_images": [encoded(Image.new("RGB", (64, 64), "red"))],
                                                        "denoising_strength": 0.5})):
        answer = client.post(f"/sdapi/v1/{route}", json={**BASE, **extra, "batch_size": 2})
        assert answer.status_code == 200, answer.text
        info = json.loads(answer.json()["info"])
        assert A1111_INFO_KEYS <= set(info), sorted(A1111_INFO_KEYS - set(info))
        assert len(info["all_subseeds"]) == len(info["all_seeds"]) and info["styles"] == []
        assert info["restore_faces"] is False and info["sd_model_hash"] and len(info["job_timestamp"]) == 14
        assert info["is_using_inpainting_conditioning"] is False
        assert info["denoising_strength"] == (0.5 if route == "img2img" else 0)


def encoded(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("extension, pil_format", [("jpg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")])
def test_saved_images_take_the_samples_format(client, backend, extension, pil_format):
    assert client.post("/sdapi/v1/options", json={"samples_format": extension, "jpeg_quality": 60}).status_code == 200
    outputs = backend.config.outdir
    before = set(outputs.rglob("*-images/*/*")) if outputs.exists() else set()
    answer = client.post("/sdapi/v1/txt2img", json={**BASE, "save_images": True, "seed": 77})
    assert answer.status_code == 200, answer.text
    new = sorted(set(outputs.rglob("*-images/*/*")) - before)
    assert [p.suffix for p in new] == [f".{extension}"]
    with Image.open(new[0]) as saved:
        assert saved.format == pil_format
        text = read_parameters(saved)
    assert text == json.loads(answer.json()["info"])["infotexts"][0] and "Seed: 77" in text
    sent = picture(answer.json()["images"][0])
    with Image.open(new[0]) as saved:
        difference = np.abs(np.asarray(saved.convert("RGB")).astype(int) - sent).mean()
    assert difference == 0 if extension == "png" else 0 < difference < 40  # lossy, but the same picture


def test_jpeg_quality_changes_the_file(client, backend):
    sizes = []
    for quality in (10, 95):
        client.post("/sdapi/v1/options", json={"samples_format": "jpg", "jpeg_quality": quality})
        before = set(backend.config.outdir.rglob("*.jpg"))
        assert client.post("/sdapi/v1/txt2img", json={**BASE, "save_images": True}).status_code == 200
        (new,) = set(backend.config.outdir.rglob("*.jpg")) - before
        sizes.append(new.stat().st_size)
    assert sizes[0] < sizes[1]


def test_eta_noise_seed_delta_changes_ancestral_samplers_only(client):
    def run(sampler, **override):
        body = {**BASE, "sampler_name": sampler, "override_settings": {**BASE["override_settings"], **override}}
        answer = client.post("/sdapi/v1/txt2img", json=body).json()
        return picture(answer["images"][0]), json.loads(answer["info"])["infotexts"][0]

    plain, text = run("Euler a")
    delta, delta_text = run("Euler a", eta_noise_seed_delta=31337)
    assert np.abs(plain - delta).mean() > 1 and "ENSD: 31337" in delta_text and "ENSD" not in text
    assert np.array_equal(delta, run("Euler a", eta_noise_seed_delta=31337)[0])  # still reproducible
    euler, euler_delta = run("Euler")[0], run("Euler", eta_noise_seed_delta=31337)
    assert np.array_equal(euler, euler_delta[0]) and "ENSD" not in euler_delta[1]
    # The option: the default of later jobs.
    assert client.post("/sdapi/v1/options", json={"eta_noise_seed_delta": 31337}).status_code == 200
    assert np.array_equal(run("Euler a")[0], delta)
    bad = client.post("/sdapi/v1/txt2img", json={**BASE, "override_settings": {"eta_noise_seed_delta": -3}})
    assert bad.status_code == 422 and "eta_noise_seed_delta" in bad.text


def test_tiling_through_the_api(client):
    answer = client.post("/sdapi/v1/txt2img", json={**BASE, "tiling": True})
    assert answer.status_code == 200
    assert "Tiling: True" in json.loads(answer.json()["info"])["infotexts"][0]
    assert json.loads(answer.json()["info"])["tiling"] is True
