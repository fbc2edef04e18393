"""The Settings tab in a real browser: pick JPEG as the file format, apply, generate: the saved file is a JPEG
with the infotext in it; the setting is in config.json and shown again after a reload. And a PNG sent from
PNG Info to txt2img brings its seed only while "send_seed" is on."""
from __future__ import annotations

import json

import pytest
from PIL import Image
from playwright.sync_api import expect

from modules.images import read_parameters
from tests.app_process import AppProcess
from tests.browser import screenshot
from tests.test_browser_txt2img import fill_small_job

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("settings-browser")
    with AppProcess("--models-dir", str(models_dir), "--outdir", str(root / "outputs"), "--ckpt", "tiny-sd15",
                    env={"ZOO_SETTINGS_FILE": str(root / "config.json")}) as app:
        app.outdir, app.settings_file = root / "outputs", root / "config.json"
        yield app


def test_the_image_format_set_in_settings_is_used_for_saved_images(app, page):
    page.goto(app.url)
    page.get_by_role("tab", name="Settings").click()
    page.locator("#setting_samples_format").get_by_label("jpg").check()
    page.locator("#setting_jpeg_quality input[type=number]").fill("70")
    page.locator("#settings_apply").click()
    expect(page.locator("#settings_status")).to_contain_text("Saved")
    saved = json.loads(app.settings_file.read_text())
    assert (saved["samples_format"], saved["jpeg_quality"]) == ("jpg", 70)
    screenshot(page, "settings-tab")

    page.get_by_role("tab", name="txt2img").click()
    fill_small_job(page, "a red circle on a white background")
    page.locator("#txt2img_generate").click()
    expect(page.locator("#txt2img_gallery img").first).to_be_visible()
    files = list(app.outdir.rglob("*-42.*"))
    assert [f.suffix for f in files] == [".jpg"]
    with Image.open(files[0]) as image:
        assert image.format == "JPEG" and "Seed: 42" in read_parameters(image)

    page.reload()
    page.get_by_role("tab", name="Settings").click()
    expect(page.locator("#setting_samples_format").get_by_label("jpg")).to_be_checked()
