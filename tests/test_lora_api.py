"""LoRAs from A1111 clients: the `webuiapi` client's get_loras and a txt2img with a `<lora:...>` tag against
a live webui.py, /sdapi/v1/refresh-loras, and refusals that name the LoRA."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import requests
from PIL import Image

from modules.generation.infotext import parse_infotext
from tests import tiny_models
from tests.app_process import AppProcess
from tests.lora_fixtures import make_kohya_lora, make_peft_lora

SMALL = dict(width=64, height=64, steps=3, cfg_scale=5.0, seed=11, sampler_name="Euler a",
             override_settings={"sd_model_checkpoint": "tiny-sd15"})


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-api")
    checkpoint = tiny_models.make_tiny_sd15(root / "models" / "Stable-diffusion" / "tiny-sd15")
    make_kohya_lora(checkpoint, root / "models" / "Lora" / "ink.safetensors", seed=1,
                    metadata={"ss_output_name": "ink-v1", "ss_tag_frequency": '{"set": {"ink": 3}}'})
    make_peft_lora(checkpoint, root / "elsewhere" / "film.safetensors", seed=2)
    flags = ["--nowebui", "--models-dir", str(root / "models"), "--lora-dir", str(root / "elsewhere"),
             "--outdir", str(root / "outputs"), "--skip-load-model-at-start"]
    with AppProcess(*flags, env={"ZOO_SETTINGS_FILE": str(root / "config.json")}) as app:
        app.root, app.checkpoint = root, checkpoint
        yield app


@pytest.fixture
def api(app):
    import webuiapi

    return webuiapi.WebUIApi(host="127.0.0.1", port=app.port)


def test_get_loras_lists_both_folders_in_a1111s_shape(api, app):
    loras = {item["name"]: item for item in api.get_loras()}
    assert set(loras) == {"ink", "film"}
    assert loras["ink"]["alias"] == "ink-v1" and loras["film"]["alias"] == "film"
    assert loras["ink"]["path"] == "models/Lora/ink.safetensors"
    assert loras["film"]["path"] == "lora-dir/film.safetensors"
    assert loras["ink"]["metadata"]["ss_tag_frequency"] == {"set": {"ink": 3}}  # JSON values parsed, as A1111
    assert str(app.root) not in str(loras)


def test_refresh_loras_finds_a_new_file(api, app):
    make_kohya_lora(app.checkpoint, app.root / "models" / "Lora" / "new" / "late.pt", seed=5)
    answer = requests.post(f"{app.url}/sdapi/v1/refresh-loras", timeout=60)
    assert answer.status_code == 200 and answer.json() is None
    assert "late" in {item["name"] for item in api.get_loras()}


def test_txt2img_with_a_lora_tag(api, app):
    plain = api.txt2img(prompt="a red circle", **SMALL)
    inked = api.txt2img(prompt="a red circle <lora:ink:1> <lora:film:0.5>", **SMALL)
    difference = np.abs(np.asarray(inked.image, dtype=np.int16) - np.asarray(plain.image, dtype=np.int16)).mean()
    assert difference > 5
    info = parse_infotext(inked.info["infotexts"][0])
    assert info["Prompt"] == "a red circle <lora:ink:1> <lora:film:0.5>"
    assert [pair.split(": ")[0] for pair in info["Lora hashes"].split(", ")] == ["ink", "film"]
    assert "Lora hashes" not in parse_infotext(plain.info["infotexts"][0])
    # PNG Info reads the tags back in the prompt, so sending it to txt2img makes the same picture again.
    read = api.png_info(inked.image).json["parameters"]
    assert read["Prompt"] == "a red circle <lora:ink:1> <lora:film:0.5>" and read["Lora hashes"] == info["Lora hashes"]
    again = api.txt2img(prompt=read["Prompt"], **SMALL)
    assert np.array_equal(np.asarray(again.image), np.asarray(inked.image))
    # A1111's disable_extra_networks: the tags are taken out, the LoRAs not used.
    answer = requests.post(f"{app.url}/sdapi/v1/txt2img", timeout=120, json={
        **SMALL, "prompt": "a red circle <lora:ink:1>", "disable_extra_networks": True})
    assert answer.status_code == 200, answer.text
    disabled = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
    assert np.array_equal(np.asarray(disabled), np.asarray(plain.image))
    assert "Lora hashes" not in parse_infotext(json.loads(answer.json()["info"])["infotexts"][0])


def test_an_unknown_lora_is_a_422_naming_it(app):
    answer = requests.post(f"{app.url}/sdapi/v1/txt2img", timeout=60,
                           json={"prompt": "a cat <lora:missing-one:1>", "width": 64, "height": 64, "steps": 2})
    assert answer.status_code == 422, answer.text
    assert "missing-one" in answer.text and "prompt" in answer.text
    answer = requests.post(f"{app.url}/sdapi/v1/txt2img", timeout=60,
                           json={"prompt": "a cat <hypernet:anime:1>", "width": 64, "height": 64, "steps": 2})
    assert answer.status_code == 422 and "hypernet" in answer.text
