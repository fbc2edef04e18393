"""/zoo/v1/gan as a script uses it: the same images as the tab, base64 PNGs that carry their infotext and
latent, the same login and the same 4xx answers naming the field as /sdapi/v1."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.inprocess_app import api_client
from tests.test_gan import gan_backend, pixels, run  # noqa: F401 - fixture

USER, PASSWORD = "alice", "s3cret-Pa55word"


@pytest.fixture(scope="module")
def client(gan_backend, tmp_path_factory):  # noqa: F811
    with api_client(gan_backend, tmp_path_factory.mktemp("gan-api")) as client:
        yield client


def decoded(text: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(text)))
    image.load()
    return image


def test_sample_returns_the_tabs_images_as_pngs_with_infotext_and_latent(client, gan_backend):  # noqa: F811
    response = client.post("/zoo/v1/gan/sample", json={"model": "tiny-gan", "seeds": "3,7", "truncation_psi": 0.8,
                                                        "class_name": "square", "task_id": "gan-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    images = [decoded(i) for i in body["images"]]
    same = run(gan_backend, seeds="3,7", truncation_psi=0.8, class_name="square")
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(images, same.images))
    assert images[0].info["parameters"].startswith("Seed: 3, Truncation psi: 0.8, Class: square, ")
    assert json.loads(images[1].info["zoo_gan"])["seed"] == 7  # the tab's import restores it
    assert body["captions"] == ["Seed 3 · square", "Seed 7 · square"]
    assert decoded(body["grid"]).size == (2 * 33 - 1, 32)
    info = json.loads(body["info"])
    assert info["task_id"] == "gan-1" and info["task_state"] == "done" and info["seeds"] == [3, 7]
    assert [s["seed"] for s in info["states"]] == [3, 7]


def test_a_seed_plane_point_and_imported_latents(client, gan_backend):  # noqa: F811
    point = client.post("/zoo/v1/gan/sample", json={"model": "tiny-gan", "position": [2, 0], "class_name": 1}).json()
    seed_2 = run(gan_backend, seeds="2", class_name=1).images[0]
    assert np.array_equal(pixels(decoded(point["images"][0])), pixels(seed_2))  # integer points are seeds
    states = json.loads(point["info"])["states"]
    again = client.post("/zoo/v1/gan/sample", json={"model": "tiny-gan", "latents": states}).json()
    assert np.array_equal(pixels(decoded(again["images"][0])), pixels(seed_2))


@pytest.mark.parametrize("body, field, words", [
    ({"seeds": "1,x"}, "seeds", "'x' is not a seed"),
    ({"truncation_psi": 3}, "truncation_psi", "must be between -1 and 2"),
    ({"truncation_psi": "lots"}, "truncation_psi", "valid number"),
    ({"class_name": "hexagon"}, "class_name", "unknown class 'hexagon'"),
    ({"model": "no-such-gan"}, None, "no-such-gan"),
    ({"script_name": "No such script"}, "script_name", "unknown script 'No such script'"),
])
def test_a_bad_field_is_a_4xx_naming_it(client, body, field, words):
    response = client.post("/zoo/v1/gan/sample", json={"model": "tiny-gan", **body})
    assert response.status_code in (404, 422), response.text
    error = response.json()
    assert error["field"] == field and words in error["detail"], error


def test_video_comes_back_as_a_gif(client):
    response = client.post("/zoo/v1/gan/video", json={"model": "tiny-gan", "seeds": "0,1", "frames": 3,
                                                       "loop": False, "size": 64, "class_name": "circle"})
    assert response.status_code == 200, response.text
    body = response.json()
    gif = Image.open(io.BytesIO(base64.b64decode(body["video"])))
    assert gif.format == "GIF" and gif.size == (64, 64) and gif.n_frames == 4 == body["frame_count"]
    assert body["media_type"] == "image/gif" and "Interpolation: lerp w" in body["infotext"]
    one_seed = client.post("/zoo/v1/gan/video", json={"model": "tiny-gan", "seeds": "4"})
    assert one_seed.status_code == 422 and one_seed.json()["field"] == "seeds"


def test_models_lists_each_gan_with_its_classes(client):
    models = {m["model_name"]: m for m in client.get("/zoo/v1/gan/models").json()}
    assert models["tiny-gan"]["classes"] == ["circle", "square", "triangle"]
    assert models["tiny-unconditional"]["classes"] == [] and models["tiny-gan"]["z_dim"] == 8
    assert models["tiny-gan"]["title"].startswith("tiny-gan.safetensors [")


def test_the_routes_are_documented_in_openapi(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/zoo/v1/gan/sample", "/zoo/v1/gan/video", "/zoo/v1/gan/models"} <= set(paths)
    assert "seeds" in json.dumps(paths["/zoo/v1/gan/sample"]) or "GanSampleApiRequest" in json.dumps(paths)


def test_with_api_auth_every_gan_route_needs_the_login(gan_backend, tmp_path):  # noqa: F811
    with api_client(gan_backend, tmp_path, "--api-auth", f"{USER}:{PASSWORD}") as client:
        body = {"model": "tiny-gan", "seeds": "1"}
        assert client.post("/zoo/v1/gan/sample", json=body).status_code == 401
        assert client.get("/zoo/v1/gan/models").status_code == 401
        assert client.post("/zoo/v1/gan/video", json=body).status_code == 401
        wrong = client.post("/zoo/v1/gan/sample", json=body, auth=(USER, "wrong"))
        assert wrong.status_code == 401
        answer = client.post("/zoo/v1/gan/sample", json={**body, "task_id": "mine"}, auth=(USER, PASSWORD))
        assert answer.status_code == 200 and len(answer.json()["images"]) == 1
        assert client.get("/zoo/v1/gan/models", auth=(USER, PASSWORD)).status_code == 200
        # The task is alice's: progress finds it under her login, as for /sdapi/v1 tasks, and nobody else's.
        progress = client.get("/sdapi/v1/progress", params={"task_id": "mine"}, auth=(USER, PASSWORD)).json()
        assert progress["task_state"] == "done" and progress["state"]["job"] == "gan"


def test_next_to_the_ui_the_gan_routes_are_api_routes():
    """With --gradio-auth, the guard sends UI paths to the login page; /zoo/v1 takes the API's HTTP Basic
    login (and owners by login or address, not by a UI cookie), as /sdapi/v1 does."""
    from modules.security import guard, ui_session

    assert guard.is_api("/zoo/v1/gan/sample") and "/zoo/v1/" in ui_session.API_PREFIXES
