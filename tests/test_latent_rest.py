"""/zoo/v1/latent as scripts use it (FastAPI's TestClient over the API app): the same logins, owners and
error answers as /sdapi/v1, images as base64 PNG, and the routes documented in OpenAPI."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from modules.capabilities.latent import state as latent_state
from tests.inprocess_app import app_client
from tests.test_latent_fixtures import latent_backend, latent_models_dir, x_position_images  # noqa: F401 - fixtures

PASSWORD = "Latent-r3st-Secret"
AUTH = ("dana", PASSWORD)
ROUTES = ("decode", "encode", "random", "interpolate", "traverse", "map")


@pytest.fixture(scope="module")
def client(latent_backend, tmp_path_factory):
    with app_client(latent_backend, tmp_path_factory.mktemp("latent-rest") / "config.json", "--api-auth",
                    f"{AUTH[0]}:{PASSWORD}") as client:
        yield client


def picture(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_every_latent_route_needs_the_login(client):
    assert client.get("/zoo/v1/latent/models").status_code == 401
    for route in ROUTES:
        response = client.post(f"/zoo/v1/latent/{route}", json={"model": "x-vae", "latent": [0, 0]})
        assert response.status_code == 401, route
    assert client.get("/zoo/v1/latent/models", auth=("dana", "wrong")).status_code == 401


def test_models_lists_the_beta_vaes(client):
    answer = client.get("/zoo/v1/latent/models", auth=AUTH).json()
    names = {m["model_name"] for m in answer["beta_vae"]}
    assert {"x-vae", "random-6d"} <= names
    assert "file: tiny-sd-vae.safetensors" in answer["sd_vae"]


def test_decode_returns_a_png_carrying_its_latent(client):
    answer = client.post("/zoo/v1/latent/decode", json={"model": "x-vae", "latent": [0.5, -1]}, auth=AUTH).json()
    with picture(answer["image"]) as image:
        assert image.size == (32, 32)
        state = latent_state.from_png(image)
    assert state.latent.tolist() == [0.5, -1.0] and state.model == "x-vae"
    assert answer["latent"] == [0.5, -1.0] and len(answer["labels"]) == 2


def test_encode_gives_mu_and_sigma_and_its_decode_is_the_reconstruction(client):
    images, _ = x_position_images(1, seed=11)
    answer = client.post("/zoo/v1/latent/encode", json={"model": "x-vae", "image": png_b64(Image.fromarray(images[0]))},
                         auth=AUTH).json()
    assert len(answer["mu"]) == 2 and all(s > 0 for s in answer["sigma"]) and not answer["restored"]
    decoded = client.post("/zoo/v1/latent/decode", json={"model": "x-vae", "latent": answer["mu"]}, auth=AUTH).json()
    assert np.abs(np.asarray(picture(decoded["image"]), int) - np.asarray(picture(answer["reconstruction"]), int)).max() <= 1
    # A decoded PNG sent back restores its latent exactly.
    again = client.post("/zoo/v1/latent/encode", json={"model": "x-vae", "image": decoded["image"]}, auth=AUTH).json()
    assert again["restored"] and again["mu"] == decoded["latent"]


def test_random_is_reproducible_by_seed(client):
    def draw(seed):
        response = client.post("/zoo/v1/latent/random", json={"model": "x-vae", "seed": seed}, auth=AUTH)
        assert response.status_code == 200, response.text  # says what the answer was if it ever is not a drawing
        return response.json()

    assert draw(5)["latent"] == draw(5)["latent"] != draw(6)["latent"]
    assert draw(-1)["seed"] >= 0


def test_interpolate_traverse_and_map_return_pictures(client):
    frames = client.post("/zoo/v1/latent/interpolate", json={"model": "x-vae", "start": [-2, 0], "end": [2, 0],
                                                             "frames": 5, "method": "lerp"}, auth=AUTH).json()
    assert len(frames["frames"]) == 5 and frames["latents"][0] == [-2.0, 0.0] and picture(frames["strip"]).width > 5 * 32
    grid = client.post("/zoo/v1/latent/traverse", json={"model": "random-6d", "latent": [0] * 6, "dims": [1, 4],
                                                        "steps": 5}, auth=AUTH).json()
    assert picture(grid["image"]).width > 5 * 64
    drawn = client.post("/zoo/v1/latent/map", json={"model": "random-6d", "latent": [0] * 6, "dim_x": 2, "dim_y": 5,
                                                    "steps": 3, "samples": 60}, auth=AUTH).json()
    assert picture(drawn["manifold"]).width > 3 * 64 and picture(drawn["scatter"]).size == (600, 460)


@pytest.mark.parametrize("route, body, field, words", [
    ("decode", {"model": "x-vae", "latent": [0.5]}, "latent", "has 1 numbers, but this model's latent_dim is 2"),
    ("decode", {"model": "x-vae", "latent": "half"}, "latent", "must be a JSON list of numbers"),
    ("interpolate", {"model": "x-vae", "start": [0, 0], "end": [1, 1], "frames": 1}, "frames", "between 2 and 120"),
    ("interpolate", {"model": "x-vae", "start": [0, 0], "end": [1, 1], "method": "cubic"}, "method", "one of lerp"),
    ("traverse", {"model": "x-vae", "latent": [0, 0], "dims": [5]}, "dims", "between 0 and 1"),
    ("map", {"model": "x-vae", "latent": [0, 0], "dim_x": 1, "dim_y": 1}, "dim_y", "must differ from dim_x"),
    ("map", {"model": "x-vae", "latent": [0, 0], "factor": "mood"}, "factor", "must be one of"),
    ("encode", {"model": "x-vae", "image": "not base64!"}, "image", "not valid base64"),
    ("decode", {"model": "x-vae", "latent": [0, 0], "colour": "red"}, "colour", "Extra inputs are not permitted"),
    ("traverse", {"model": "x-vae", "latent": [0, 0], "steps": "many"}, "steps", "valid integer"),
])
def test_a_bad_field_is_a_422_naming_it(client, route, body, field, words):
    response = client.post(f"/zoo/v1/latent/{route}", json=body, auth=AUTH)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["field"] == field and words in answer["message"]


def test_an_unknown_model_is_a_404_and_an_unreadable_image_a_422(client):
    response = client.post("/zoo/v1/latent/decode", json={"model": "nope", "latent": [0]}, auth=AUTH)
    assert response.status_code == 404 and "unknown beta-vae model 'nope'" in response.json()["detail"]
    text = base64.b64encode(b"not a picture at all").decode()
    response = client.post("/zoo/v1/latent/encode", json={"model": "x-vae", "image": text}, auth=AUTH)
    assert response.status_code == 422 and response.json()["field"] == "image"
    assert "/" not in response.json()["message"], "no server path in an answer"


def test_a_task_id_names_the_job_for_the_caller_only(client, latent_backend):
    body = {"model": "x-vae", "latent": [0, 0], "task_id": "my-latent-1"}
    assert client.post("/zoo/v1/latent/decode", json=body, auth=AUTH).status_code == 200
    from modules import owners

    job = latent_backend.jobs.get("my-latent-1", owners.user(AUTH[0]))
    assert job is not None and job.kind == "latent-decode" and job.state == "done"
    again = client.post("/zoo/v1/latent/decode", json=body, auth=AUTH)
    assert again.status_code == 409 and again.json()["field"] == "task_id"


def test_the_routes_are_documented_in_openapi(client):
    schema = client.get("/openapi.json", auth=AUTH).json()
    for route in ROUTES:
        operation = schema["paths"][f"/zoo/v1/latent/{route}"]["post"]
        assert operation["summary"] and operation["requestBody"] and "200" in operation["responses"]
    assert "get" in schema["paths"]["/zoo/v1/latent/models"]
