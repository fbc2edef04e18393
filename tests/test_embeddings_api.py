"""Embeddings through the real app (webui.py with --embeddings-dir): A1111's GET /sdapi/v1/embeddings as the
webuiapi client reads it, refresh-embeddings, and a txt2img whose prompt names one records `TI hashes`."""
from __future__ import annotations

import hashlib

import pytest
import requests

from modules.generation.infotext import parse_infotext
from tests import embedding_fixtures as ef
from tests.app_process import AppProcess

USER, PASSWORD = "tina", "ti-Secret-pass-77"


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("embeddings-api")
    folder = work / "my-embeddings"
    folder.mkdir()
    ef.a1111_pt(folder / "mystyle.pt", ef.vectors(2, 32), step=1200)  # the tiny SD 1.x model's width
    ef.sdxl_safetensors(folder / "xlstyle.safetensors", ef.vectors(1, 32), ef.vectors(1, 64))
    ef.malicious_pt(folder / "evil.pt", work / "pwned")
    flags = ["--nowebui", "--api-auth", f"{USER}:{PASSWORD}", "--admin-users", USER, "--models-dir", str(models_dir),
             "--embeddings-dir", str(folder), "--outdir", str(work / "outputs"), "--skip-load-model-at-start"]
    with AppProcess(*flags, env={"ZOO_SETTINGS_FILE": str(work / "config.json")}) as app:
        app.folder, app.marker = folder, work / "pwned"
        yield app


@pytest.fixture
def api(app):
    import webuiapi

    client = webuiapi.WebUIApi(host="127.0.0.1", port=app.port, username=USER, password=PASSWORD,
                               sampler="Euler a", steps=3)
    client.set_options({"sd_model_checkpoint": "tiny-sd15"})
    return client


def test_get_embeddings_in_a1111s_format(api, app):
    found = api.get_embeddings()
    assert found["loaded"] == {"mystyle": {"step": 1200, "sd_checkpoint": "abcdef12",
                                           "sd_checkpoint_name": "tiny-sd15", "shape": 32, "vectors": 2}}
    assert found["skipped"] == {"xlstyle": {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None,
                                            "shape": 96, "vectors": 1}}
    assert not app.marker.exists()  # the hostile .pt is in neither list, and never ran


def test_against_an_sdxl_default_the_other_one_fits(api):
    api.set_options({"sd_model_checkpoint": "tiny-sdxl"})
    found = api.get_embeddings()
    assert list(found["loaded"]) == ["xlstyle"] and list(found["skipped"]) == ["mystyle"]


def test_refresh_embeddings_sees_a_new_file(api, app):
    ef.single_safetensors(app.folder / "fresh.safetensors", ef.vectors(1, 32))
    response = requests.post(f"{app.url}/sdapi/v1/refresh-embeddings", auth=(USER, PASSWORD), timeout=30)
    assert response.status_code == 200 and response.json() is None
    assert "fresh" in api.get_embeddings()["loaded"]


def test_embeddings_need_the_api_login(app):
    assert requests.get(f"{app.url}/sdapi/v1/embeddings", timeout=30).status_code == 401


def test_txt2img_with_an_embedding_records_its_hash(api, app):
    result = api.txt2img(prompt="a red mystyle circle", negative_prompt="blurry", seed=7, width=64, height=64,
                         steps=3)
    plain = api.txt2img(prompt="a red circle", negative_prompt="blurry", seed=7, width=64, height=64, steps=3)
    sha256 = hashlib.sha256((app.folder / "mystyle.pt").read_bytes()).hexdigest()
    parameters = parse_infotext(result.images[0].info["parameters"])
    assert parameters["TI hashes"] == f"mystyle: {sha256[:12]}"
    assert 'TI hashes: "mystyle: ' in result.images[0].info["parameters"]
    assert "TI hashes" not in parse_infotext(plain.images[0].info["parameters"])
