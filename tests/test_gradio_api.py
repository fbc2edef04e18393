"""The txt2img Gradio endpoint is callable from gradio_client, as scripts and bots use it."""
from __future__ import annotations

import pytest
from PIL import Image

from modules.generation.infotext import parse_infotext
from tests.app_process import AppProcess


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("api-outputs")
    with AppProcess("--models-dir", str(models_dir), "--outdir", str(outdir), "--skip-load-model-at-start") as app:
        yield app


def call_txt2img(client, checkpoint, width=64, seed=7):
    return client.predict(checkpoint, "a green star", "", "DPM++ 2M Karras", 3, 5.0, width, 64, seed, 1, 2,
                          api_name="/txt2img")


def test_gradio_client_txt2img_returns_images_with_infotext(app):
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    gallery, _progress, message, infotext = call_txt2img(client, "tiny-sdxl")
    assert message == ""
    assert len(gallery) == 2 and [item["caption"] for item in gallery] == ["Seed 7", "Seed 8"]
    with Image.open(gallery[0]["image"]) as image:
        assert image.size == (64, 64)
        assert parse_infotext(image.info["parameters"])["Seed"] == "7"
    assert parse_infotext(infotext)["Model"] == "tiny-sdxl"


def test_gradio_client_gets_a_clear_message_for_a_bad_value(app):
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    _gallery, _progress, message, _infotext = call_txt2img(client, "tiny-sd15", width=33)
    assert "width: must be a multiple of 8" in message
