"""A user in a real browser: pick a β-VAE, move a slider, see the picture change; save the PNG and drop
it back to restore the sliders."""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.browser import screenshot, set_slider
from tests.test_latent_fixtures import latent_app, latent_backend, latent_models_dir  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


def open_explorer(page, url: str, model: str = "x-vae") -> None:
    page.goto(url)
    page.get_by_role("tab", name="Latent Explorer").click()
    page.locator("#latent_model input").click()
    page.get_by_role("option", name=model).click()
    expect(page.locator("#latent_z0")).to_contain_text("z0")
    expect(page.locator("#latent_vector textarea")).to_have_value("[0.0, 0.0]")


def test_moving_a_slider_changes_the_decoded_image(latent_app, page):
    open_explorer(page, latent_app)
    label = page.locator("#latent_z0, #latent_z1").filter(has_text="position_x")
    expect(label).to_have_count(1)
    image = page.locator("#latent_image img")
    expect(image).to_be_visible()
    before = image.get_attribute("src")
    slider_id = label.get_attribute("id")
    set_slider(page, slider_id, 2)
    expect(image).not_to_have_attribute("src", before)
    dim = int(slider_id.removeprefix("latent_z"))
    expect(page.locator("#latent_vector textarea")).to_have_value(
        json.dumps([2.0 if d == dim else 0.0 for d in range(2)]))
    # Dragging the range sends many moves; the last position wins.
    track = page.locator(f"#latent_z{1 - dim} input[type=range]").bounding_box()
    dragged = image.get_attribute("src")
    page.mouse.move(track["x"] + track["width"] / 2, track["y"] + track["height"] / 2)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(track["x"] + track["width"] * (0.5 - 0.04 * step), track["y"] + track["height"] / 2)
    page.mouse.up()
    expect(image).not_to_have_attribute("src", dragged)
    expect(page.locator("#latent_message")).to_have_text("")
    screenshot(page, "latent")


def test_a_saved_png_dropped_back_restores_the_sliders(latent_app, page, tmp_path):
    open_explorer(page, latent_app)
    set_slider(page, "latent_z0", -1.5)
    set_slider(page, "latent_z1", 0.75)
    expect(page.locator("#latent_vector textarea")).to_have_value("[-1.5, 0.75]")
    page.locator("#latent_save").click()
    link = page.locator("#latent_saved a").first
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith("-x-vae.png")
    page.locator("#latent_reset").click()
    expect(page.locator("#latent_vector textarea")).to_have_value("[0.0, 0.0]")
    page.locator("#latent_upload input[type=file]").set_input_files(str(saved))  # dropping encodes at once
    expect(page.locator("#latent_message")).to_contain_text("Restored the latent stored in this PNG")
    expect(page.locator("#latent_z0 input[type=number]")).to_have_value("-1.5")
    expect(page.locator("#latent_z1 input[type=number]")).to_have_value("0.75")
