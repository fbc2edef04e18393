"""Bad input to /sdapi/v1 is a 4xx JSON answer naming the field, never a 500; bodies are bounded (issue 13)."""
from __future__ import annotations

import json

import pytest

USER_AGENT = {"content-type": "application/json"}
SMALL = {"prompt": "a dot", "width": 64, "height": 64, "steps": 2, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def client(backend, tmp_path_factory):
    from starlette.testclient import TestClient

    from modules import cmd_args
    from modules.api.server import create_api_app

    work = tmp_path_factory.mktemp("api-bounds")
    args = cmd_args.parse_args(["--nowebui", "--models-dir", str(backend.config.models_dir),
                                "--outdir", str(work / "outputs"), "--skip-load-model-at-start"])
    app, api = create_api_app(backend, args, work / "config.json")
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        client.settings = api.settings
        yield client


def post_raw(client, path: str, text: str):
    return client.post(path, content=text.encode("utf-8", "surrogatepass"), headers=USER_AGENT)


def assert_error(response, status: int, field: str | None, words: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()
    assert error["field"] == field and words in error["detail"], error
    return error


@pytest.mark.parametrize("value", ["NaN", "1e400", "-Infinity", "2.5", "1" + "0" * 500, '"3"'])
def test_clip_skip_option_that_is_not_a_whole_number_is_422(client, value):
    response = post_raw(client, "/sdapi/v1/options", '{"CLIP_stop_at_last_layers": %s}' % value)
    assert_error(response, 422, "CLIP_stop_at_last_layers", "must be")


def test_clip_skip_option_deeper_than_the_text_encoder_is_refused_when_saved(client):
    # The tiny checkpoints' text encoders have 2 layers.
    response = client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 3})
    assert_error(response, 422, "CLIP_stop_at_last_layers", "only 2 layers: use 1 to 2")
    assert client.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 1


def test_clip_skip_deeper_than_the_text_encoder_in_a_job_is_422(client):
    body = {**SMALL, "override_settings": {"CLIP_stop_at_last_layers": 5}}
    response = client.post("/sdapi/v1/txt2img", json=body)
    assert_error(response, 422, "override_settings.CLIP_stop_at_last_layers", "only 2 layers")


def test_a_saved_clip_skip_too_deep_for_the_checkpoint_gives_way(client):
    client.settings.update({"CLIP_stop_at_last_layers": 12})  # saved before, for a deeper text encoder
    try:
        response = client.post("/sdapi/v1/txt2img", json={**SMALL, "send_images": False})
        assert response.status_code == 200, response.text
        assert "Clip skip: 2" in json.loads(response.json()["info"])["infotexts"][0]
    finally:
        client.settings.update({"CLIP_stop_at_last_layers": 1})


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_unpaired_surrogate_in_a_prompt_is_422(client, field):
    response = post_raw(client, "/sdapi/v1/txt2img", json.dumps({**SMALL, field: "a \ud800 b"}))
    assert_error(response, 422, field, "unpaired surrogate")


def test_a_prompt_over_the_length_cap_is_422_naming_it(client):
    response = client.post("/sdapi/v1/txt2img", json={**SMALL, "negative_prompt": "(a" * 5000 + "b" * 10_001})
    assert_error(response, 422, "negative_prompt", "over the limit of 20000")


def test_deeply_nested_prompt_makes_an_image(client):
    response = client.post("/sdapi/v1/txt2img", json={**SMALL, "prompt": "(" * 5000 + "a" + ")" * 5000,
                                                      "send_images": False})
    assert response.status_code == 200, response.text


def test_a_large_json_body_is_refused_by_size_and_not_echoed(client):
    filler = "x" * (2 << 20)
    response = client.post("/sdapi/v1/txt2img", json={**SMALL, "styles": [filler]})
    error = assert_error(response, 413, None, "over the 1024 KB limit")
    assert len(response.content) < 1000 and "xxxx" not in response.text
    # Without Content-Length (chunked) too.
    response = client.post("/sdapi/v1/options", content=iter([b'{"a": "' + b"x" * (1 << 19)] * 3),
                           headers=USER_AGENT)
    assert response.status_code == 413 and "xxxx" not in response.text
    assert error["error"] == "Payload Too Large"


def test_a_validation_error_does_not_echo_the_input(client):
    response = client.post("/sdapi/v1/txt2img", json={**SMALL, "steps": "y" * 5000})
    assert response.status_code == 422
    assert "yyyy" not in response.text and len(response.content) < 2000


def test_png_info_refuses_a_decompression_bomb_from_its_header(client):
    import base64

    from tests.image_bombs import bomb_png

    body = {"image": "data:image/png;base64," + base64.b64encode(bomb_png(13000, 13000)).decode()}
    response = client.post("/sdapi/v1/png-info", json=body)
    assert_error(response, 422, "image", "over the limit of 33554432 pixels")  # with or without its size


def test_an_error_quoting_a_surrogate_is_still_json(client):
    body = {**SMALL, "override_settings": {"sd_model_checkpoint": "no such \ud800 model"}}
    response = post_raw(client, "/sdapi/v1/txt2img", json.dumps(body))
    assert response.status_code == 404 and response.json()["field"] == "override_settings.sd_model_checkpoint"
    response = post_raw(client, "/sdapi/v1/options", json.dumps({"sd_model_checkpoint": "x\udfff"}))
    assert response.status_code == 422 and response.json()["field"] == "sd_model_checkpoint"
