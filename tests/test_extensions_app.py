"""Extensions in the live app (webui.main, a real server): it starts and serves every tab with broken
extensions beside good ones; the probe's hooks change a job from the UI (gradio_client) and from the
API alike; X/Y/Z plot runs from both; callbacks add a route and see saved images and loaded models."""
from __future__ import annotations

import base64
import io
import sys

import numpy as np
import pytest
import requests
from PIL import Image

from modules.generation.infotext import parse_infotext
from tests.inprocess_app import running_app
from tests.test_extensions_fixtures import example_enabled_state, make_extensions_folder

SMALL = dict(steps=2, width=64, height=64)


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("extensions-app")
    folder = make_extensions_folder(root / "extensions")
    flags = ["--models-dir", str(models_dir), "--outdir", str(root / "outputs"), "--ckpt", "tiny-sd15", "--api"]
    env = {"ZOO_EXTENSIONS_DIR": str(folder), "ZOO_EXTENSIONS_STATE": example_enabled_state(root / "state.json"),
           "ZOO_SETTINGS_FILE": str(root / "config.json")}
    with running_app(*flags, env=env) as live:
        live.outdir = root / "outputs"
        yield live


def probe_events(app) -> list:
    probe = next(s for s in app.backend.extensions.scripts if s.title() == "Probe")
    return sys.modules[type(probe).__module__].EVENTS


def ui_txt2img(client, **values):
    base = dict(checkpoint="tiny-sd15", prompt="a green star", negative_prompt="", sampler="Euler a",
                steps=2, cfg_scale=5.0, width=64, height=64, seed=21, batch_count=1, batch_size=1)
    base.update(values)
    return client.predict(**base, api_name="/txt2img")


def test_the_app_starts_with_broken_extensions_and_every_tab_works(app):
    extensions = app.backend.extensions
    assert extensions.find("broken_import").status == "error"
    assert extensions.find("broken_tab").status == "error"
    assert {e.name for e in extensions.items if e.loaded} >= {"xyz_plot", "example_tab", "probe", "broken_hook"}
    page = requests.get(app.url, timeout=30)
    assert page.status_code == 200
    config = requests.get(f"{app.url}/config", timeout=30).json()
    labels = {c["props"].get("label") for c in config["components"] if c.get("type") == "tabitem"}
    assert {"txt2img", "GAN Sampler", "Latent Explorer", "PNG Info", "Models", "Example", "Extensions"} <= labels
    endpoints = requests.get(f"{app.url}/gradio_api/info", timeout=30).json()["named_endpoints"]
    assert {"/txt2img", "/gan_sample", "/gan_script", "/example_greet", "/refresh_checkpoints"} <= set(endpoints)


def test_hooks_change_a_job_from_the_ui_path(app):
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    _, _, message, plain_info = ui_txt2img(client)
    assert message == ""
    gallery, _, message, infotext = ui_txt2img(client, probe_prompt_suffix="in a hat", probe_invert=True)
    assert message == ""
    params = parse_infotext(infotext)
    assert (params["Prompt"], params["Probe"], params["Probe batch"]) == ("a green star in a hat", "in a hat", "0 21")
    assert "Probe" not in parse_infotext(plain_info)
    # postprocess_image inverted the image of the changed prompt
    same_prompt, _, _, _ = ui_txt2img(client, prompt="a green star in a hat")
    with Image.open(same_prompt[0]["image"]) as reference, Image.open(gallery[0]["image"]) as changed:
        assert np.array_equal(255 - np.asarray(reference.convert("RGB")), np.asarray(changed.convert("RGB")))
    assert ("model", "tiny-sd15") in probe_events(app)  # on_model_loaded


def test_hooks_change_a_job_from_the_api_path(app):
    body = dict(prompt="a green star", seed=21, sampler_name="Euler a", cfg_scale=5.0, save_images=True, **SMALL,
                override_settings={"sd_model_checkpoint": "tiny-sd15"})
    answer = requests.post(f"{app.url}/sdapi/v1/txt2img", timeout=300,
                           json={**body, "alwayson_scripts": {"Probe": {"args": ["in a hat"]}}})
    assert answer.status_code == 200, answer.text
    image = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
    params = parse_infotext(image.info["parameters"])
    assert (params["Prompt"], params["Probe"], params["Probe batch"]) == ("a green star in a hat", "in a hat", "0 21")
    saved = requests.get(f"{app.url}/example-tab/saved", timeout=30).json()  # on_app_started + on_image_saved
    assert saved["count"] >= 1 and saved["paths"][-1].endswith("-21.png")
    scripts = requests.get(f"{app.url}/sdapi/v1/scripts", timeout=30).json()
    assert set(scripts["txt2img"]) == {"x/y/z plot", "probe", "crashes"}


def test_xyz_plot_from_the_ui_and_from_the_api_make_the_same_grid(app):
    from gradio_client import Client

    gallery, _, message, infotext = ui_txt2img(Client(app.url, verbose=False), seed=3, script_name="X/Y/Z plot",
                                               x_y_z_plot_x_type="Seed", x_y_z_plot_x_values="3, 4",
                                               x_y_z_plot_y_type="Steps", x_y_z_plot_y_values="1-2")
    assert message == "" and len(gallery) == 1
    assert parse_infotext(infotext)["X Values"] == "3, 4"
    answer = requests.post(f"{app.url}/sdapi/v1/txt2img", timeout=300, json=dict(
        prompt="a green star", seed=3, sampler_name="Euler a", cfg_scale=5.0, **SMALL,
        override_settings={"sd_model_checkpoint": "tiny-sd15"},
        script_name="x/y/z plot", script_args=["Seed", "3, 4", "Steps", "1-2"]))
    assert answer.status_code == 200, answer.text
    api_grid = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
    with Image.open(gallery[0]["image"]) as ui_grid:
        assert ui_grid.size == api_grid.size and ui_grid.width > 2 * 64 and ui_grid.height > 2 * 64
        assert np.array_equal(np.asarray(ui_grid.convert("RGB")), np.asarray(api_grid.convert("RGB")))
    bad = requests.post(f"{app.url}/sdapi/v1/txt2img", timeout=60, json=dict(
        prompt="x", **SMALL, script_name="X/Y/Z plot", script_args=["Steps", "0"]))
    assert bad.status_code == 422 and "steps: must be between 1 and 150" in bad.json()["detail"]
