"""The /sdapi/v1 API as A1111 users script it: the real `webuiapi` client against a live webui.py."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from modules.generation.infotext import parse_infotext
from tests.app_process import AppProcess

USER, PASSWORD = "alice", "s3cret-Pa55word"
OTHER_USER, OTHER_PASSWORD = "bob", "another-s3cret"
SMALL = dict(width=64, height=64, steps=3, cfg_scale=5.0)


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("api-live")
    settings = work / "config.json"
    flags = ["--nowebui", "--api-auth", f"{USER}:{PASSWORD},{OTHER_USER}:{OTHER_PASSWORD}", "--admin-users", USER,
             "--models-dir", str(models_dir), "--outdir", str(work / "outputs"), "--skip-load-model-at-start"]
    with AppProcess(*flags, env={"ZOO_SETTINGS_FILE": str(settings)}) as app:
        app.settings_file = settings
        yield app
    assert PASSWORD not in app.output and OTHER_PASSWORD not in app.output


@pytest.fixture
def api(app):
    import webuiapi

    return webuiapi.WebUIApi(host="127.0.0.1", port=app.port, username=USER, password=PASSWORD,
                             sampler="Euler a", steps=3)


def test_txt2img_returns_pngs_with_infotext(api):
    result = api.txt2img(prompt="a red circle", negative_prompt="blurry", seed=42, batch_size=2,
                         override_settings={"sd_model_checkpoint": "tiny-sd15"}, **SMALL)
    # A1111's answer: the batch grid (one row of two), then the images
    assert [image.size for image in result.images] == [(128, 64), (64, 64), (64, 64)]
    assert parse_infotext(result.images[0].info["parameters"])["Seed"] == "42"
    first = parse_infotext(result.images[1].info["parameters"])
    assert (first["Prompt"], first["Negative prompt"], first["Seed"]) == ("a red circle", "blurry", "42")
    assert (first["Sampler"], first["Steps"], first["Model"]) == ("Euler a", "3", "tiny-sd15")
    assert parse_infotext(result.images[2].info["parameters"])["Seed"] == "43"
    assert result.info["all_seeds"] == [42, 43] and len(result.info["infotexts"]) == 3
    assert result.info["index_of_first_image"] == 1
    assert result.parameters["prompt"] == "a red circle" and result.parameters["enable_hr"] is False


def test_scheduler_is_the_schedule_type_and_is_written_as_a1111_does(api):
    def written(**values):
        result = api.txt2img(prompt="a star", seed=3, override_settings={"sd_model_checkpoint": "tiny-sd15"},
                             **values, **SMALL)
        parsed = parse_infotext(result.images[0].info["parameters"])
        return parsed["Sampler"], parsed.get("Schedule type"), result.info["scheduler"]
    assert written(sampler_name="DPM++ 2M", scheduler="Karras") == ("DPM++ 2M", "Karras", "Automatic")
    assert written(sampler_name="DPM++ 2M Karras") == ("DPM++ 2M", "Karras", "Automatic")  # before A1111 1.9
    assert written(sampler_name="Euler", scheduler="Exponential") == ("Euler", "Exponential", "Exponential")
    assert written(sampler_name="Euler", scheduler="sgm_uniform") == ("Euler", "SGM Uniform", "SGM Uniform")


def test_png_info_reads_the_parameters_back(api):
    image = api.txt2img(prompt="a blue square", seed=9, override_settings={"sd_model_checkpoint": "tiny-sd15"},
                        **SMALL).images[0]
    result = api.png_info(image)
    assert result.info == image.info["parameters"]
    assert result.json["parameters"]["Seed"] == "9" and result.json["parameters"]["Prompt"] == "a blue square"


def test_list_models_samplers_and_schedulers(api):
    titles = api.util_get_model_names()
    assert any(t.startswith("tiny-sd15 [") for t in titles) and any(t.startswith("tiny-sdxl [") for t in titles)
    model = next(m for m in api.get_sd_models() if m["model_name"] == "tiny-sd15")
    assert model["title"] == f"tiny-sd15 [{model['hash']}]" and model["sha256"].startswith(model["hash"])
    assert {"Euler a", "DPM++ 2M", "DPM++ 2M SDE Heun", "DDIM"} <= set(api.util_get_sampler_names())
    assert {"automatic", "uniform", "karras", "exponential", "sgm_uniform", "simple", "beta",
            "align_your_steps"} == set(api.util_get_scheduler_names())
    assert api.get_sd_vae() == []
    assert api.get_memory()["ram"]["total"] > 0


def test_options_set_the_default_for_later_jobs_and_are_saved(api, app):
    api.set_options({"sd_model_checkpoint": "tiny-sdxl", "CLIP_stop_at_last_layers": 2})
    try:
        assert api.util_get_current_model().startswith("tiny-sdxl [")
        saved = json.loads(app.settings_file.read_text())
        assert saved["sd_model_checkpoint"].startswith("tiny-sdxl [") and saved["CLIP_stop_at_last_layers"] == 2
        result = api.txt2img(prompt="a circle", seed=1, **SMALL)
        params = parse_infotext(result.images[0].info["parameters"])
        assert params["Model"] == "tiny-sdxl" and params["Clip skip"] == "2"
    finally:
        api.set_options({"sd_model_checkpoint": "tiny-sd15", "CLIP_stop_at_last_layers": 1})


def test_webuiapi_get_options_set_options_round_trip(api, app):
    """webuiapi's get_options / set_options: every A1111 key read, all written back with changes, read again."""
    import webuiapi

    options = api.get_options()
    assert {"send_seed", "samples_format", "jpeg_quality", "sd_vae", "eta_noise_seed_delta", "outdir_samples",
            "sd_hypernetwork", "show_progress_every_n_steps"} <= set(options)
    changed = {**options, "send_seed": not options["send_seed"], "samples_format": "webp", "jpeg_quality": 90,
               "show_progress_every_n_steps": 3}  # the last: a key we keep without acting on it
    try:
        api.set_options(changed)
        again = api.get_options()
        assert {k: again[k] for k in changed if k != "sd_checkpoint_hash"} == {
            k: v for k, v in changed.items() if k != "sd_checkpoint_hash"}
        # as another user (not an admin): their own per-user options, the server's for everyone else
        other = webuiapi.WebUIApi(host="127.0.0.1", port=app.port, username=OTHER_USER, password=OTHER_PASSWORD)
        other.set_options({"samples_format": "jpg"})
        assert other.get_options()["samples_format"] == "jpg" and api.get_options()["samples_format"] == "webp"
    finally:
        api.set_options({k: options[k] for k in ("send_seed", "samples_format", "jpeg_quality",
                                                   "show_progress_every_n_steps")})


def test_two_clients_each_get_their_checkpoint(app):
    """Two users at once, each naming a checkpoint for their own job: neither changes the other's."""
    import webuiapi

    clients = {
        "tiny-sd15": webuiapi.WebUIApi(port=app.port, username=USER, password=PASSWORD, sampler="Euler a"),
        "tiny-sdxl": webuiapi.WebUIApi(port=app.port, username=OTHER_USER, password=OTHER_PASSWORD, sampler="Euler a"),
    }
    default_before = clients["tiny-sd15"].util_get_current_model()

    def run(checkpoint: str, seed: int) -> str:
        result = clients[checkpoint].txt2img(prompt="a dot", seed=seed, n_iter=2,
                                             override_settings={"sd_model_checkpoint": checkpoint}, **SMALL)
        return {parse_infotext(image.info["parameters"])["Model"] for image in result.images}

    with ThreadPoolExecutor(4) as pool:
        jobs = [(checkpoint, pool.submit(run, checkpoint, seed))
                for seed in (1, 2) for checkpoint in ("tiny-sd15", "tiny-sdxl")]
        for checkpoint, job in jobs:
            assert job.result(timeout=300) == {checkpoint}
    assert clients["tiny-sd15"].util_get_current_model() == default_before


@pytest.mark.parametrize("payload, field, message", [
    ({"width": 4}, "width", "must be between 8 and 2048"),
    ({"steps": -1}, "steps", "must be between 1 and 150"),
    ({"sampler_name": "Euler z"}, "sampler_name", "unknown sampler 'Euler z'"),
    ({"scheduler": "Polyexponential"}, "scheduler", "unknown schedule type 'Polyexponential'"),
    ({"sampler_name": "Euler a", "scheduler": "Karras"}, "scheduler", "Euler a does not take the schedule type"),
    ({"override_settings": {"sd_model_checkpoint": "no-such-model"}}, "override_settings.sd_model_checkpoint",
     "unknown checkpoint 'no-such-model'"),
])
def test_a_bad_field_is_a_clear_4xx_naming_it(app, payload, field, message):
    body = {"prompt": "x", "width": 64, "height": 64, "steps": 3, **payload}
    response = requests.post(f"{app.url}/sdapi/v1/txt2img", json=body, auth=(USER, PASSWORD), timeout=60)
    assert response.status_code == (404 if "checkpoint" in field else 422)
    error = response.json()
    assert error["field"] == field and message in error["detail"] and error["detail"].startswith(f"{field}: ")


def test_every_route_needs_the_login(app):
    spec = requests.get(f"{app.url}/openapi.json", auth=(USER, PASSWORD), timeout=30).json()
    assert "/sdapi/v1/txt2img" in spec["paths"]
    checked = 0
    for path, methods in spec["paths"].items():
        for method in methods:
            # A wrong password under another name (the throttle would lock the real user out): refused
            # with 401, or with 429 once that name has failed 10 times.
            for auth in (None, ("mallory", "wrong")):
                response = requests.request(method, app.url + path, auth=auth, timeout=30)
                assert response.status_code == 401 or (auth and response.status_code == 429), (method, path)
                if response.status_code == 401:
                    assert response.headers["WWW-Authenticate"] == "Basic"
                checked += 1
    assert checked >= 2 * 17
    for path in ("/docs", "/openapi.json"):
        assert requests.get(app.url + path, timeout=30).status_code == 401
    assert requests.get(f"{app.url}/docs", auth=(USER, PASSWORD), timeout=30).status_code == 200


def test_cmd_flags_redact_the_login(api):
    flags = api.get_cmd_flags()
    assert flags["api_auth"] == "<redacted>" and flags["nowebui"] is True
    assert PASSWORD not in json.dumps(flags)


def test_progress_when_idle_is_what_webuiapi_waits_for(api):
    progress = api.get_progress()
    assert progress["progress"] == 0 and progress["state"]["job_count"] == 0
    api.util_wait_for_ready(check_interval=0.1)


def test_send_images_false_and_save_images(api, app):
    outputs = Path(app.flags[app.flags.index("--outdir") + 1])
    before = sorted(outputs.rglob("*.png"))
    result = api.txt2img(prompt="saved", seed=5, send_images=False, save_images=True,
                         override_settings={"sd_model_checkpoint": "tiny-sd15"}, **SMALL)
    assert result.images == [] and result.info["all_seeds"] == [5]
    after = sorted(outputs.rglob("*.png"))
    assert len(after) == len(before) + 1 and after[-1].name.endswith("-5.png")


def test_api_next_to_the_ui_uses_the_ui_logins_when_there_is_no_api_auth(models_dir, tmp_path):
    """--api mounts /sdapi/v1 and /docs on the UI's port; the UI keeps working, and a --gradio-auth
    login (with no --api-auth) protects the API too."""
    import webuiapi

    flags = ["--api", "--gradio-auth", f"ui:{PASSWORD}", "--models-dir", str(models_dir),
             "--outdir", str(tmp_path / "outputs"), "--skip-load-model-at-start"]
    with AppProcess(*flags, env={"ZOO_SETTINGS_FILE": str(tmp_path / "config.json")}) as app:
        deadline = time.time() + 60
        while not any(line.startswith("API docs: ") for line in app.lines) and time.time() < deadline:
            time.sleep(0.1)  # Gradio says "Running on" just before the API is mounted
        assert requests.get(f"{app.url}/sdapi/v1/samplers", timeout=30).status_code == 401
        assert requests.get(f"{app.url}/docs", timeout=30).status_code == 401
        assert requests.get(f"{app.url}/docs", auth=("ui", PASSWORD), timeout=30).status_code == 200
        api = webuiapi.WebUIApi(port=app.port, username="ui", password=PASSWORD, sampler="Euler a", steps=3)
        result = api.txt2img(prompt="next to the UI", seed=4, override_settings={"sd_model_checkpoint": "tiny-sd15"},
                             **SMALL)
        assert parse_infotext(result.images[0].info["parameters"])["Seed"] == "4"
        assert requests.get(f"{app.url}/config", timeout=30).status_code in (200, 401)  # Gradio's own route
        assert "/sdapi/v1/txt2img" in requests.get(f"{app.url}/openapi.json", auth=("ui", PASSWORD),
                                                   timeout=30).json()["paths"]


def test_the_cached_models_are_listed_with_their_kind(api, app):
    api.txt2img(prompt="a red circle", seed=2, **SMALL)
    answer = requests.get(f"{app.url}/zoo/v1/models/cached", auth=(USER, PASSWORD), timeout=30).json()
    checkpoints = [m for m in answer["models"] if m["kind"] == "checkpoint"]
    assert checkpoints and checkpoints[0]["architecture"] and checkpoints[0]["bytes"] > 0
    assert answer["ram_bytes"] == sum(m["bytes"] for m in answer["models"]) <= answer["ram_budget"]


def test_webuiapi_img2img_and_inpainting(api):
    from PIL import Image, ImageDraw

    init = Image.new("RGB", (64, 64), (200, 30, 30))
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 31, 63), fill=255)
    plain = api.img2img(images=[init], prompt="a blue square", seed=9, denoising_strength=0.6,
                        override_settings={"sd_model_checkpoint": "tiny-sd15"}, **SMALL)
    fields = parse_infotext(plain.images[0].info["parameters"])
    assert plain.images[0].size == (64, 64) and fields["Denoising strength"] == "0.6"
    painted = api.img2img(images=[init], mask_image=mask, prompt="a blue square", seed=9, mask_blur=0,
                          inpaint_full_res=False, override_settings={"sd_model_checkpoint": "tiny-sd15"}, **SMALL)
    right = painted.images[0].crop((32, 0, 64, 64))
    assert {colour for _, colour in right.getcolors()} == {(200, 30, 30)}  # outside the mask: the picture, exactly
    assert parse_infotext(painted.images[0].info["parameters"])["Mask blur"] == "0"
