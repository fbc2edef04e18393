"""A user in a real browser: the explorer opens on a clear picture (an encoded data-set image); pick a
β-VAE, move a slider, see the picture change; save the PNG and drop it back to restore the sliders; a
bad upload or import says what to do and leaves nothing stale on the page."""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.browser import screenshot, set_slider
from tests.test_latent_fixtures import latent_app, latent_backend, latent_models_dir  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


def first_latent(backend, model: str) -> str:
    """The latent the explorer opens on for `model`: data-set image #0, encoded."""
    from modules.capabilities import latent
    from modules.ui.latent.common import latent_text

    return latent_text(backend.run(latent.DATASET, latent.DataSetLatentRequest(model, 0)).latent)


def open_explorer(page, url: str, backend, model: str = "x-vae") -> list[float]:
    """The Latent Explorer with `model` picked; returns the latent it shows."""
    page.goto(url)
    page.get_by_role("tab", name="Latent Explorer").click()
    page.locator("#latent_model input").click()
    page.get_by_role("option", name=model).click()
    expect(page.locator("#latent_z0")).to_contain_text("z0")
    expect(page.locator("#latent_vector textarea")).to_have_value(first_latent(backend, model))
    return json.loads(page.locator("#latent_vector textarea").input_value())


def toast(page):
    return page.locator(".toast-body")


def test_the_explorer_opens_on_an_encoded_data_set_picture(latent_app, latent_backend, page):
    from modules.capabilities.latent import models

    page.goto(latent_app)
    page.get_by_role("tab", name="Latent Explorer").click()
    default = models.default_title(latent_backend)
    expect(page.locator("#latent_model input")).to_have_value(default)
    expect(page.locator("#latent_vector textarea")).to_have_value(first_latent(latent_backend, default))
    expect(page.locator("#latent_image img")).to_be_visible()
    # Interpolation's ends are data-set encodings too: its first strip is of clear pictures.
    page.get_by_role("tab", name="Interpolate").click()
    expect(page.locator("#latent_start textarea, #latent_start input")).not_to_have_value("")
    expect(page.locator("#latent_end textarea, #latent_end input")).not_to_have_value("")


def test_moving_a_slider_changes_the_decoded_image(latent_app, latent_backend, page):
    first = open_explorer(page, latent_app, latent_backend)
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
        json.dumps([2.0 if d == dim else first[d] for d in range(2)]))
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


def test_a_saved_png_dropped_back_restores_the_sliders(latent_app, latent_backend, page, tmp_path):
    open_explorer(page, latent_app, latent_backend)
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


def test_a_failed_upload_clears_what_the_encoder_saw(latent_app, latent_backend, page, tmp_path):
    from PIL import Image

    from tests.test_latent_fixtures import x_position_images

    open_explorer(page, latent_app, latent_backend)
    Image.fromarray(x_position_images(1, seed=4)[0][0]).save(tmp_path / "circle.png")
    (tmp_path / "notes.png").write_text("not a picture")
    upload = page.locator("#latent_upload input[type=file]")
    upload.set_input_files(str(tmp_path / "circle.png"))
    expect(page.locator("#latent_input img")).to_be_visible()
    page.locator("#latent_upload button[aria-label='Remove Image']").click()
    upload.set_input_files(str(tmp_path / "notes.png"))
    expect(toast(page)).to_contain_text("notes.png cannot be read as an image")
    expect(page.locator("#latent_input img")).to_have_count(0)
    expect(page.locator("#latent_reconstruction img")).to_have_count(0)


def test_importing_a_png_without_a_latent_says_what_to_do(latent_app, latent_backend, page, tmp_path):
    from PIL import Image

    open_explorer(page, latent_app, latent_backend)
    Image.new("RGB", (32, 32), "orange").save(tmp_path / "photo.png")
    page.get_by_role("tab", name="Import / export").click()
    page.locator("#latent_import input[type=file]").set_input_files(str(tmp_path / "photo.png"))
    expect(toast(page)).to_contain_text("carries no latent")
    expect(toast(page)).to_contain_text("drop it into Encode")
    expect(toast(page)).not_to_contain_text("JSON")


def no_error_shown(page) -> None:
    page.wait_for_timeout(300)
    expect(toast(page)).to_have_count(0)


def test_every_tool_answers_its_button(latent_app, latent_backend, page, tmp_path):
    """Each panel's main button gives its picture, no error (the wiring of every handler, once)."""
    from PIL import Image

    open_explorer(page, latent_app, latent_backend)
    expect(page.locator("#latent_z2")).to_be_hidden()
    page.locator("#latent_randomize").click()
    expect(page.locator("#latent_message")).to_contain_text("Random latent from seed")
    page.locator("#latent_reset").click()
    expect(page.locator("#latent_vector textarea")).to_have_value("[0.0, 0.0]")
    for tab, button, result in (("Interpolate", "latent_interpolate", "latent_strip"),
                                ("Traverse", "latent_traverse", "latent_traverse_grid"),
                                ("Map", "latent_map", "latent_scatter")):
        page.get_by_role("tab", name=tab).click()
        page.locator(f"#{button}").click()
        expect(page.locator(f"#{result} img")).to_be_visible()
        no_error_shown(page)
    page.get_by_role("tab", name="Import / export").click()
    page.locator("#latent_export").click()
    expect(page.locator("#latent_exported a").first).to_be_visible()
    page.get_by_role("tab", name="Encode").click()
    page.get_by_role("tab", name="Data set").click()
    page.locator("#latent_encode_sample").click()
    expect(page.locator("#latent_input img")).to_be_visible()
    no_error_shown(page)

    page.get_by_role("tab", name="SD VAE").click()
    Image.new("RGB", (64, 64), "red").save(tmp_path / "red.png")
    page.locator("#latent_sd_image input[type=file]").set_input_files(str(tmp_path / "red.png"))
    page.locator("#latent_sd_encode").click()
    expect(page.locator("#latent_sd_message")).to_contain_text("Latent 4×")
    decoded = page.locator("#latent_sd_decoded img")
    before = decoded.get_attribute("src")
    set_slider(page, "latent_sd_offset0", 1.5)
    expect(decoded).not_to_have_attribute("src", before)
    page.locator("#latent_sd_compute").click()
    expect(page.locator("#latent_sd_message")).to_contain_text("directions from")
    expect(page.locator("#latent_sd_pc0")).to_be_visible()
    page.locator("#latent_sd_reset").click()
    expect(page.locator("#latent_sd_offset0 input[type=number]")).to_have_value("0")
    no_error_shown(page)
