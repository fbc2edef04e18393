"""A1111's Extras and upscaler routes: its request and response shapes, the tiny ESRGAN through spandrel,
bad fields answered 422 naming the field, and a code-running pickle refused by name without running."""
from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.inprocess_app import api_client
from tests.test_gan_api import decoded
from tests.test_upscalers import picture
from tests.upscaler_fixtures import upscaler_backend, upscaler_models  # noqa: F401 - fixtures


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.fixture(scope="module")
def client(upscaler_backend, tmp_path_factory):  # noqa: F811
    with api_client(upscaler_backend, tmp_path_factory.mktemp("extras-api")) as client:
        yield client


def test_upscalers_and_latent_modes_are_listed_as_a1111_does(client):
    upscalers = client.get("/sdapi/v1/upscalers").json()
    names = [u["name"] for u in upscalers]
    assert names[:3] == ["None", "Lanczos", "Nearest"] and "tiny-esrgan" in names and "tiny-realesrgan" in names
    assert set(upscalers[0]) == {"name", "model_name", "model_path", "model_url", "scale"}
    esrgan = upscalers[names.index("tiny-esrgan")]
    assert esrgan["model_name"] == "ESRGAN" and not esrgan["model_path"].startswith("/")
    modes = client.get("/sdapi/v1/latent-upscale-modes").json()
    assert [m["name"] for m in modes] == ["Latent", "Latent (antialiased)", "Latent (bicubic)",
                                          "Latent (bicubic antialiased)", "Latent (nearest)", "Latent (nearest-exact)"]


def test_single_image_with_the_tiny_esrgan_is_exactly_4x(client):
    response = client.post("/sdapi/v1/extra-single-image", json={
        "image": b64(picture()), "upscaler_1": "tiny-esrgan", "upscaling_resize": 4})
    assert response.status_code == 200, response.text
    body = response.json()
    image = decoded(body["image"])
    assert image.size == (96, 64)
    assert body["html_info"].startswith("Postprocess upscale by: 4, Postprocess upscaler: tiny-esrgan")
    assert image.info["parameters"] == image.info["postprocessing"] == body["html_info"]


def test_the_source_parameters_stay_and_extras_adds_postprocessing(client):
    from modules.images import png_info

    buffer = io.BytesIO()
    picture().save(buffer, format="PNG", pnginfo=png_info("a red circle\nSteps: 20, Seed: 7"))
    response = client.post("/sdapi/v1/extra-single-image", json={
        "image": base64.b64encode(buffer.getvalue()).decode(), "upscaler_1": "Nearest", "upscaling_resize": 2})
    image = decoded(response.json()["image"])
    assert image.info["parameters"] == "a red circle\nSteps: 20, Seed: 7"
    assert image.info["postprocessing"] == response.json()["html_info"] == (
        "Postprocess upscale by: 2, Postprocess upscaler: Nearest, Size: 48x32")


def test_a1111s_defaults_and_unknown_extra_fields_are_accepted(client):
    # A1111's own test posts just the image (and an interrogation "model" it ignores here, as A1111 does).
    response = client.post("/sdapi/v1/extra-single-image", json={"image": b64(picture()), "model": "clip"})
    assert response.status_code == 200, response.text
    assert decoded(response.json()["image"]).size == (48, 32)


def test_batch_images_to_a_size_with_a_second_upscaler(client):
    response = client.post("/sdapi/v1/extra-batch-images", json={
        "imageList": [{"data": b64(picture()), "name": "a.png"}, {"data": b64(picture(8, 8)), "name": "b.png"}],
        "resize_mode": 1, "upscaling_resize_w": 40, "upscaling_resize_h": 40, "upscaler_1": "tiny-realesrgan",
        "upscaler_2": "Nearest", "extras_upscaler_2_visibility": 0.3})
    assert response.status_code == 200, response.text
    assert [decoded(i).size for i in response.json()["images"]] == [(40, 40), (40, 40)]


@pytest.mark.parametrize("route, fields, field", [
    ("extra-single-image", {"upscaler_1": "no-such"}, "upscaler_1"),
    ("extra-single-image", {"upscaling_resize": 100}, "upscaling_resize"),
    ("extra-single-image", {"upscaling_resize": "x"}, "upscaling_resize"),
    ("extra-single-image", {"resize_mode": 3}, "resize_mode"),
    ("extra-single-image", {"resize_mode": 1, "upscaling_resize_w": -5}, "upscaling_resize_w"),
    ("extra-single-image", {"extras_upscaler_2_visibility": 2}, "extras_upscaler_2_visibility"),
    ("extra-single-image", {"gfpgan_visibility": 1}, "gfpgan_visibility"),  # no file in models/GFPGAN
    ("extra-single-image", {"codeformer_visibility": 0.5}, "codeformer_visibility"),
    ("extra-single-image", {"gfpgan_visibility": 2}, "gfpgan_visibility"),
    ("extra-single-image", {"image": "not base64!"}, "image"),
    ("extra-single-image", {"image": ""}, "image"),
    ("extra-single-image", {"upscaler_1": "Latent"}, "upscaler_1"),
    ("extra-batch-images", {"imageList": []}, "imageList"),
    ("extra-batch-images", {"imageList": [{"data": "%%%", "name": "x.png"}]}, "imageList.0.data"),
])
def test_bad_fields_are_422_naming_the_field(client, route, fields, field):
    body = {"image": b64(picture())} if route == "extra-single-image" else {}
    body.update(fields)
    response = client.post(f"/sdapi/v1/{route}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field, response.text


def test_a_code_running_pickle_is_refused_by_name_and_never_runs(client, upscaler_models):  # noqa: F811
    response = client.post("/sdapi/v1/extra-single-image",
                           json={"image": b64(picture()), "upscaler_1": "evil-upscaler"})
    assert 400 <= response.status_code < 500, response.text
    assert "evil-upscaler.pth" in response.text and "refused" in response.text
    assert str(upscaler_models) not in response.text
    assert not (upscaler_models.parent / "pwned").exists()


@pytest.fixture(scope="module")
def app(upscaler_models, tmp_path_factory):  # noqa: F811
    from tests.app_process import AppProcess

    outdir = tmp_path_factory.mktemp("extras-outputs")
    with AppProcess("--models-dir", str(upscaler_models), "--outdir", str(outdir), "--skip-load-model-at-start") as app:
        app.outdir = outdir
        yield app


def test_the_extras_tab_upscales_a_single_image_and_a_batch_and_saves_them(app, tmp_path):
    from gradio_client import Client, handle_file

    first, second = tmp_path / "first.png", tmp_path / "second.png"
    picture().save(first)
    picture(10, 6).save(second)
    client = Client(app.url, verbose=False)
    gallery, info = client.predict("single", handle_file(str(first)), [], "Scale by", 4, 512, 512, True,
                                   "tiny-esrgan", "None", 0, api_name="/extras")
    assert info.startswith("Postprocess upscale by: 4, Postprocess upscaler: tiny-esrgan")
    with Image.open(gallery[0]["image"]) as image:
        assert image.size == (96, 64)
    uploads = [handle_file(str(first)), handle_file(str(second))]
    gallery, info = client.predict("batch", None, uploads, "Scale to", 4, 30, 20, False, "Lanczos", "tiny-realesrgan",
                                   0.5, api_name="/extras")
    assert [item["caption"] for item in gallery] == ["first.png", "second.png"]
    for item in gallery:
        with Image.open(item["image"]) as image:
            assert image.size == (30, 20)
    saved = sorted((app.outdir / "extras-images").rglob("*.png"))
    assert [p.name.split("-", 1)[1] for p in saved] == ["extras.png", "first.png", "second.png"]
    with Image.open(saved[1]) as image:
        assert image.info["parameters"].startswith("Postprocess upscale to: 30x20, Postprocess crop to fit: False")


def test_the_extras_tab_names_the_field_of_a_bad_value_in_a_toast(app):
    from gradio_client import Client

    with pytest.raises(Exception, match="no image"):
        Client(app.url, verbose=False).predict("single", None, [], "Scale by", 4, 512, 512, True, "Lanczos", "None", 0,
                                               api_name="/extras")
