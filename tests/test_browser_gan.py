"""A user in a real browser opens the GAN Sampler on a grid of every class, samples a grid, drags through
the seed plane (the dot moves the way of the hand), snaps to a seed and renders a video from it, and drops
a saved PNG back to restore it; a script calls the same sampling through the gan_sample endpoint."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.app_process import AppProcess
from tests.browser import screenshot
from tests.test_gan import make_gan

pytestmark = pytest.mark.browser

# Colour and kind, as the built-in model's classes: captions as long as "Seed 0 · blue circle".
CLASSES = ("red circle", "blue circle", "red square", "blue square", "red triangle", "blue triangle",
           "red star", "blue star")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    models = tmp_path_factory.mktemp("gan-browser-models")
    make_gan(models / "GAN" / "tiny-gan.safetensors", class_names=CLASSES)
    outdir = tmp_path_factory.mktemp("gan-browser-outputs")
    with AppProcess("--models-dir", str(models), "--outdir", str(outdir), "--skip-load-model-at-start") as app:
        app.outdir = outdir
        yield app


def open_gan_tab(page, url):
    page.goto(url)
    page.get_by_role("tab", name="GAN Sampler").click()
    expect(page.locator("#gan_model input")).to_have_value(re.compile(r"^tiny-gan\.safetensors \[[0-9a-f]{10}\]$"))


def natural_size(locator) -> tuple[int, int]:
    locator.evaluate("img => img.decode()")
    return tuple(locator.evaluate("img => [img.naturalWidth, img.naturalHeight]"))


def truncated(locator) -> bool:
    """Whether the element's text is cut off (ends in '…' on the screen)."""
    return locator.evaluate("el => el.scrollWidth > el.clientWidth + 1")


def test_the_sampler_opens_on_a_readable_grid_of_every_class(app, page):
    open_gan_tab(page, app.url)
    preview = page.locator("#gan_gallery .media-button img")
    expect(preview).to_be_visible()  # a first picture, before any click
    expect(page.locator("#gan_gallery .caption")).to_have_text(re.compile(r"^Seed 0 of every class"))
    width, height = natural_size(preview)
    assert (width, height) == (4 * 33 - 1, 2 * 33 - 1)  # 8 classes as 4 x 2, not a 1 x 8 strip
    assert preview.bounding_box()["width"] >= 2 * width  # shown large, not as a thumbnail
    screenshot(page, "gan-first")


def test_sample_a_grid_browse_the_seed_plane_and_restore_a_png(app, page):
    open_gan_tab(page, app.url)
    page.locator("#gan_seeds textarea").fill("0-3")
    page.locator("#gan_generate").click()
    expect(page.locator("#gan_gallery .thumbnail-small")).to_have_count(5)  # the grid and four images
    expect(page.locator("#gan_infotext textarea")).to_have_value(re.compile(
        r"^Seed: 0, Truncation psi: 1, Class: red circle, Size: 32x32, Model hash: [0-9a-f]{10}, Model: tiny-gan, "))
    saved = sorted(p.name[6:] for p in (app.outdir / "gan-images").rglob("*.png"))
    assert saved == ["0.png", "1.png", "2.png", "3.png"]
    screenshot(page, "gan")

    page.locator("#gan_next_seeds").click()  # the next page of seeds
    expect(page.locator("#gan_seeds textarea")).to_have_value("4-7")
    expect(page.locator("#gan_infotext textarea")).to_have_value(re.compile(r"^Seed: 4, "))

    saved = sorted((app.outdir / "gan-images").rglob("*-2.png"))[0]
    page.get_by_text("Latents: export and import").click()
    page.locator("#gan_import input[type=file]").set_input_files(str(saved))
    expect(page.locator("#gan_message")).to_contain_text("Restored 1 latent from")
    expect(page.locator("#gan_seeds textarea")).to_have_value("2")
    expect(page.locator("#gan_infotext textarea")).to_have_value(
        re.compile(r"^Seed: 2, Truncation psi: 1, Class: red circle"))


def test_captions_are_shown_whole(app, page):
    open_gan_tab(page, app.url)
    page.locator("#gan_seeds textarea").fill("0-3")
    page.locator("#gan_generate").click()
    expect(page.locator("#gan_gallery .thumbnail-small")).to_have_count(5)
    page.locator("#gan_gallery .thumbnail-small").nth(1).click()
    caption = page.locator("#gan_gallery .caption")
    expect(caption).to_have_text("Seed 0 · red circle")
    assert not truncated(caption)
    page.locator("#gan_gallery button[aria-label=Close]").click()  # the thumbnail grid, captions on each
    labels = page.locator("#gan_gallery .caption-label")
    expect(labels).to_have_count(5)
    expect(labels.nth(4)).to_have_text("Seed 3 · red circle")
    assert not any(truncated(labels.nth(n)) for n in range(5))


def test_the_pad_moves_the_way_of_the_drag_and_snap_then_video_works(app, page):
    open_gan_tab(page, app.url)
    pad = page.locator("#gan_plane_pad .gan-pad").bounding_box()
    x, y = pad["x"] + pad["width"] / 2, pad["y"] + pad["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y + 24, steps=6)  # right and down: x grows by 60/48 seeds, y by 24/48
    page.mouse.up()
    expect(page.locator("#gan_plane_x input")).to_have_value("1.25")
    expect(page.locator("#gan_plane_y input")).to_have_value("0.5")
    expect(page.locator("#gan_plane_image img")).to_be_visible()
    page.locator("#gan_plane_snap").click()
    expect(page.locator("#gan_plane_x input")).to_have_value("1")
    expect(page.locator("#gan_plane_y input")).to_have_value("1")  # 0.5 rounds up, as the nearest seed does
    expect(page.locator("#gan_seeds textarea")).to_have_value("1001")

    # One seed after Snap: the video walks the square of the plane from it, not an error.
    page.get_by_text("Interpolation video").click()
    page.locator("#gan_video_render").click()
    expect(page.locator("#gan_message")).to_contain_text("frames →", timeout=120_000)
    expect(page.locator("#gan_message")).to_contain_text("1001,1002,2002,2001")
    expect(page.locator("#gan_video_gif img")).to_be_visible()
    infotext = page.locator("#gan_infotext textarea")
    expect(infotext).to_have_value(re.compile(r'^Seeds: "1001,1002,2002,2001", '))


def test_the_plane_fields_show_their_numbers_whole(app, page):
    open_gan_tab(page, app.url)
    for elem_id in ("gan_plane_x", "gan_plane_y"):
        box = page.locator(f"#{elem_id} input")
        box.fill("123.456")
        assert not truncated(box), f"{elem_id} cuts off 123.456"


def test_gan_sample_endpoint_from_gradio_client(app):
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    gallery, message, infotext = client.predict("tiny-gan", "5,6", 0.5, "blue square", 1, None, 1,
                                                api_name="/gan_sample")
    assert message == "" and len(gallery) == 3 and gallery[1]["caption"] == "Seed 5 · blue square"
    assert infotext.startswith("Seed: 5, Truncation psi: 0.5, Class: blue square, ")
    with pytest.raises(Exception, match="seeds: 'x' is not a seed"):  # a toast in the browser, raised here
        client.predict("tiny-gan", "5,x", 0.5, "blue square", 1, None, 1, api_name="/gan_sample")


def test_send_the_gan_picture_to_img2img(app, page):
    open_gan_tab(page, app.url)
    expect(page.locator("#gan_gallery .media-button img")).to_be_visible()
    page.locator("#gan_send_to_img2img").click()
    sent = page.locator("#img2img_image img").first
    expect(sent).to_be_visible()  # the img2img tab is shown, with the picture
    assert natural_size(sent) == (4 * 33 - 1, 2 * 33 - 1)
    expect(page.locator("#img2img_width input[type=number]")).to_have_value("128")  # its size, in multiples of 8
    expect(page.locator("#img2img_prompt textarea")).to_have_value("")  # a GAN's parameters are no prompt
