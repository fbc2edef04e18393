"""The txt2img Gradio endpoint is callable from gradio_client, as scripts and bots use it."""
from __future__ import annotations

import html

import pytest
from PIL import Image

from modules.generation.infotext import parse_infotext
from tests.app_process import AppProcess


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("api-outputs")
    with AppProcess("--models-dir", str(models_dir), "--outdir", str(outdir), "--skip-load-model-at-start") as app:
        app.outdir = outdir
        yield app


def call_txt2img(client, checkpoint, width=64, seed=7):
    return client.predict(checkpoint, "a green star", "", "DPM++ 2M Karras", 3, 5.0, width, 64, seed, 1, 2,
                          api_name="/txt2img")


def test_gradio_client_txt2img_returns_images_with_infotext(app):
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    gallery, _progress, message, infotext = call_txt2img(client, "tiny-sdxl")
    assert message == ""
    # the batch grid (one row of two), then the images
    assert len(gallery) == 3 and [item["caption"] for item in gallery] == ["Grid", "Seed 7", "Seed 8"]
    with Image.open(gallery[0]["image"]) as grid:
        assert grid.size == (128, 64)
    with Image.open(gallery[1]["image"]) as image:
        assert image.size == (64, 64)
        assert parse_infotext(image.info["parameters"])["Seed"] == "7"
    assert parse_infotext(infotext)["Model"] == "tiny-sdxl"


@pytest.mark.parametrize("field, value, expected", [
    ("scheduler", "Karras", "scheduler: Euler a does not take the schedule type 'Karras'"),
    ("steps", 0, "steps: must be between 1 and 150"),
    ("cfg_scale", 31, "cfg_scale: must be between 0 and 30"),  # NaN cannot travel in JSON; see test_txt2img
    ("height", 2056, "height: must be between 8 and 2048"),
    ("sampler", "Euler z", "sampler: unknown sampler 'Euler z'"),
])
def test_the_ui_shows_a_clear_message_for_a_bad_value_and_writes_nothing(app, field, value, expected):
    """A user's error is a toast (gr.Error), which gradio_client raises with the same one sentence."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    values = {"checkpoint": "tiny-sd15", "prompt": "a green star", "negative_prompt": "", "sampler": "Euler a",
              "steps": 3, "cfg_scale": 5.0, "width": 64, "height": 64, "seed": 99, "batch_count": 1, "batch_size": 1}
    values[field] = value
    before = sorted(app.outdir.rglob("*.png"))
    with pytest.raises(AppError) as refused:
        Client(app.url, verbose=False).predict(*values.values(), api_name="/txt2img")
    assert expected in html.unescape(str(refused.value))
    assert "Traceback" not in str(refused.value) and str(app.outdir) not in str(refused.value)
    assert sorted(app.outdir.rglob("*.png")) == before
