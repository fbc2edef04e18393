"""The Extras tab in a real browser: upload a picture, pick the tiny ESRGAN, Generate, see it 4x as large;
then the Batch Process tab with two uploads scaled to a size (the hidden mode follows the open tab)."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.app_process import AppProcess
from tests.browser import screenshot, set_slider
from tests.test_upscalers import picture
from tests.upscaler_fixtures import upscaler_models  # noqa: F401 - fixture

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(upscaler_models, tmp_path_factory):  # noqa: F811
    outdir = tmp_path_factory.mktemp("extras-browser-outputs")
    with AppProcess("--models-dir", str(upscaler_models), "--outdir", str(outdir), "--skip-load-model-at-start") as app:
        app.outdir = outdir
        yield app


def pick(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.click()
    page.get_by_role("option", name=value, exact=True).click()


def natural_sizes(page) -> list[list[int]]:
    images = page.locator("#extras_gallery img")
    expect(images.first).to_be_visible()
    # Every picture loaded, not only the first (a busy machine loads the second one later).
    page.wait_for_function("() => [...document.querySelectorAll('#extras_gallery img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    return images.evaluate_all("imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")


def test_the_extras_tab_upscales_an_upload_4x_and_a_batch_to_a_size(app, page, tmp_path):
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    picture(24, 16).save(first)
    picture(10, 6).save(second)
    page.goto(app.url)
    page.get_by_role("tab", name="Extras").click()
    page.locator("#extras_image input[type=file]").set_input_files(str(first))
    pick(page, "extras_upscaler_1", "tiny-esrgan")
    set_slider(page, "extras_upscaling_resize", 4)
    page.locator("#extras_generate").click()
    expect(page.locator("#extras_html_info textarea")).to_have_value(
        "Postprocess upscale by: 4, Postprocess upscaler: tiny-esrgan, Size: 96x64")
    assert [96, 64] in natural_sizes(page)
    screenshot(page, "extras-tab")

    page.get_by_role("tab", name="Batch Process").click()
    page.locator("#extras_image_batch input[type=file]").set_input_files([str(first), str(second)])
    page.get_by_label("Scale to").check()
    page.locator("#extras_upscaling_resize_w input").fill("30")
    page.locator("#extras_upscaling_resize_h input").fill("20")
    page.locator("#extras_generate").click()
    expect(page.locator("#extras_html_info textarea")).to_have_value(re.compile(r"^Postprocess upscale to: 30x20, .*"))
    assert natural_sizes(page) == [[30, 20], [30, 20]]
    saved = sorted((app.outdir / "extras-images").rglob("*.png"))
    assert [p.name.split("-", 1)[1] for p in saved] == ["extras.png", "first.png", "second.png"]
