"""A user in a real browser samples a GAN grid, drags through the seed plane, and drops a saved PNG
back to restore it; a script calls the same sampling through the gan_sample endpoint."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.app_process import AppProcess
from tests.browser import screenshot
from tests.test_gan import make_gan

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    models = tmp_path_factory.mktemp("gan-browser-models")
    make_gan(models / "GAN" / "tiny-gan.safetensors")
    outdir = tmp_path_factory.mktemp("gan-browser-outputs")
    with AppProcess("--models-dir", str(models), "--outdir", str(outdir), "--skip-load-model-at-start") as app:
        app.outdir = outdir
        yield app


def open_gan_tab(page, url):
    page.goto(url)
    page.get_by_role("tab", name="GAN Sampler").click()
    expect(page.locator("#gan_model input")).to_have_value(re.compile(r"^tiny-gan\.safetensors \[[0-9a-f]{10}\]$"))


def test_sample_a_grid_browse_the_seed_plane_and_restore_a_png(app, page):
    open_gan_tab(page, app.url)
    page.locator("#gan_seeds textarea").fill("0-3")
    page.locator("#gan_generate").click()
    expect(page.locator("#gan_gallery img")).to_have_count(5)  # the grid and four images
    expect(page.locator("#gan_infotext textarea")).to_have_value(re.compile(
        r"^Seed: 0, Truncation psi: 1, Class: circle, Size: 32x32, Model hash: [0-9a-f]{10}, Model: tiny-gan, "))
    saved = sorted(p.name[6:] for p in (app.outdir / "gan-images").rglob("*.png"))
    assert saved == ["0.png", "1.png", "2.png", "3.png"]
    screenshot(page, "gan")

    page.locator("#gan_next_seeds").click()  # the next page of seeds
    expect(page.locator("#gan_seeds textarea")).to_have_value("4-7")
    expect(page.locator("#gan_infotext textarea")).to_have_value(re.compile(r"^Seed: 4, "))

    pad = page.locator("#gan_plane_pad .gan-pad").bounding_box()
    x, y = pad["x"] + pad["width"] / 2, pad["y"] + pad["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 60, y, steps=6)  # grab and pull the plane left: x grows by 60/48 seeds
    page.mouse.up()
    expect(page.locator("#gan_plane_x input")).to_have_value("1.25")
    expect(page.locator("#gan_plane_image img")).to_be_visible()
    page.locator("#gan_plane_snap").click()
    expect(page.locator("#gan_plane_x input")).to_have_value("1")
    expect(page.locator("#gan_seeds textarea")).to_have_value("1")

    saved = sorted((app.outdir / "gan-images").rglob("*-2.png"))[0]
    page.get_by_text("Latents: export and import").click()
    page.locator("#gan_import input[type=file]").set_input_files(str(saved))
    expect(page.locator("#gan_message")).to_contain_text("Restored 1 latent from")
    expect(page.locator("#gan_seeds textarea")).to_have_value("2")
    expect(page.locator("#gan_infotext textarea")).to_have_value(
        re.compile(r"^Seed: 2, Truncation psi: 1, Class: circle"))


def test_gan_sample_endpoint_from_gradio_client(app):
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    gallery, message, infotext = client.predict("tiny-gan", "5,6", 0.5, "square", 1, None, 1, api_name="/gan_sample")
    assert message == "" and len(gallery) == 3 and gallery[1]["caption"] == "Seed 5 · square"
    assert infotext.startswith("Seed: 5, Truncation psi: 0.5, Class: square, ")
    _, message, _ = client.predict("tiny-gan", "5,x", 0.5, "square", 1, None, 1, api_name="/gan_sample")
    assert "seeds: &#x27;x&#x27; is not a seed" in message
