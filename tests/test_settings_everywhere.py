"""One settings service, read at start-up whatever the flags: a saved default checkpoint and clip skip reach
the UI's jobs without --api (through the real entry point), and the API reads the same settings."""
from __future__ import annotations

import json

import pytest
import requests

from modules.generation.infotext import parse_infotext
from modules.capabilities.txt2img.request import Txt2ImgRequest
from modules.settings import Settings
from tests import gradio_raw
from tests.inprocess_app import endpoint_data, running_app


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("settings-everywhere")
    settings = root / "config.json"
    settings.write_text(json.dumps({"sd_model_checkpoint": "tiny-sd15-single", "CLIP_stop_at_last_layers": 2,
                                    "samples_save": False}))
    flags = ["--models-dir", str(models_dir), "--outdir", str(root / "outputs"), "--skip-load-model-at-start",
             "--offline"]  # no --api
    with running_app(*flags, env={"ZOO_SETTINGS_FILE": str(settings)}) as live:
        live.outdir = root / "outputs"
        yield live


def test_a_saved_default_checkpoint_and_clip_skip_reach_a_ui_job_without_api(app):
    browser = requests.Session()
    config = browser.get(f"{app.url}/config", timeout=30).json()
    picker = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "sd_checkpoint")
    assert picker["props"]["value"].startswith("tiny-sd15-single.safetensors [")  # shown as the default
    generate = gradio_raw.event_of(config, "txt2img_generate")
    # A call that names no checkpoint (as an API client of the UI may): the saved default, not the first one.
    data = endpoint_data(app.url, "txt2img", ["", "a red circle", "", "Euler a", 2, 7, 64, 64, 5, 1, 1],
                         session=browser)
    gallery, _, message, infotext, *_ = gradio_raw.call(app.url, browser, generate, data)
    assert message == "" and len(gallery) == 1
    parsed = parse_infotext(infotext)
    assert parsed["Model"] == "tiny-sd15-single" and parsed["Clip skip"] == "2"
    assert not list(app.outdir.rglob("*.png"))  # samples_save is off


def test_jobs_from_python_get_the_settings_too(backend, tmp_path):
    before = backend.settings
    try:
        backend.use_settings(Settings(None))
        backend.settings.update({"CLIP_stop_at_last_layers": 2, "samples_save": False,
                                 "sd_model_checkpoint": backend.find_checkpoint_title("tiny-sd15-single")})
        result = backend.txt2img(Txt2ImgRequest(prompt="a red circle", steps=1, width=64, height=64, seed=3))
        parsed = parse_infotext(result.infotexts[0])
        assert parsed["Model"] == "tiny-sd15-single" and parsed["Clip skip"] == "2" and not result.save_errors
        # A value the job sets wins over the setting.
        result = backend.txt2img(Txt2ImgRequest(prompt="a red circle", steps=1, width=64, height=64, seed=3,
                                                checkpoint="tiny-sd15", clip_skip=1, save_images=False))
        parsed = parse_infotext(result.infotexts[0])
        assert parsed["Model"] == "tiny-sd15" and "Clip skip" not in parsed
    finally:
        backend.use_settings(before)


def test_a_default_too_deep_for_the_checkpoint_gives_way(backend):
    before = backend.settings
    try:
        backend.use_settings(Settings(None))
        backend.settings.update({"CLIP_stop_at_last_layers": 12})
        request = backend.job_defaults(Txt2ImgRequest(checkpoint="tiny-sd15"))
        assert request.clip_skip == backend.clip_skip_limit("tiny-sd15") < 12
    finally:
        backend.use_settings(before)


def test_a_users_own_pick_is_their_default_and_saving_an_option_ends_a_flags_override(tmp_path, backend):
    settings = Settings(tmp_path / "config.json")
    settings.preferences.set("bob", "sd_model_checkpoint", "tiny-sdxl")
    settings.override("sd_model_checkpoint", "tiny-sd15")  # --ckpt, for this run
    assert settings.for_user("sd_model_checkpoint", "bob") == "tiny-sdxl"
    assert settings.for_user("sd_model_checkpoint", "alice") == settings.get("sd_model_checkpoint") == "tiny-sd15"
    assert settings.for_user("CLIP_stop_at_last_layers", "bob") == 1  # not a per-user option
    settings.update({"sd_model_checkpoint": "tiny-sd15-single"})
    assert Settings(tmp_path / "config.json").get("sd_model_checkpoint") == settings.get("sd_model_checkpoint") \
        == "tiny-sd15-single"
    assert Settings(tmp_path / "config.json").get("grid_save") is True  # the default: batch grids are saved
