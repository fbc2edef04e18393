"""The Settings tab in a real browser: pick JPEG as the file format, apply, generate: the saved file is a JPEG
with the infotext in it; the setting is in config.json and shown again after a reload. And a PNG sent from
PNG Info to txt2img brings its seed only while "send_seed" is on."""
from __future__ import annotations

import json
import re

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
    page.locator("#setting_show_progress_type").get_by_label("Approx NN").check()
    page.locator("#settings_apply").click()
    expect(page.locator("#settings_status")).to_contain_text("Saved")
    saved = json.loads(app.settings_file.read_text())
    assert (saved["samples_format"], saved["jpeg_quality"], saved["show_progress_type"]) == ("jpg", 70, "Approx NN")
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



def test_send_seed_off_keeps_the_seed_when_png_info_sends_a_picture(app, page, tmp_path):
    from PIL import PngImagePlugin

    picture = tmp_path / "made.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a blue square\nSteps: 5, Sampler: Euler, CFG scale: 7, Seed: 9876, Size: 64x64")
    Image.new("RGB", (64, 64), "blue").save(picture, pnginfo=info)

    def send() -> None:
        page.get_by_role("tab", name="PNG Info").click()
        page.locator("#pnginfo_image input[type=file]").set_input_files(str(picture))
        expect(page.locator("#pnginfo_parameters textarea")).to_have_value(re.compile("Seed: 9876"))
        page.locator("#pnginfo_send_to_txt2img").click()
        expect(page.locator("#txt2img_prompt textarea")).to_have_value("a blue square")

    page.goto(app.url)
    page.get_by_role("tab", name="Settings").click()
    page.locator("#setting_send_seed input").uncheck()
    page.locator("#settings_apply").click()
    expect(page.locator("#settings_status")).to_contain_text("Saved")
    page.get_by_role("tab", name="txt2img").click()
    page.locator("#txt2img_seed input").fill("5")
    send()
    expect(page.locator("#txt2img_seed input")).to_have_value("5")  # kept

    page.get_by_role("tab", name="Settings").click()
    page.locator("#setting_send_seed input").check()
    page.locator("#settings_apply").click()
    expect(page.locator("#settings_status")).to_contain_text("Saved")
    page.reload()
    send()
    expect(page.locator("#txt2img_seed input")).to_have_value("9876")  # sent

@pytest.fixture(scope="module")
def login_app(models_dir, tmp_path_factory):
    from tests.inprocess_app import running_app

    root = tmp_path_factory.mktemp("settings-logins")
    with running_app("--gradio-auth", "alice:Alice-pw-settings,bob:Bob-pw-settings", "--admin-users", "alice",
                     "--models-dir", str(models_dir), "--outdir", str(root / "outputs"),
                     "--skip-load-model-at-start", "--offline",
                     env={"ZOO_SETTINGS_FILE": str(root / "config.json")}) as live:
        live.root = root
        yield live


def log_in(page, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.get_by_role("tab", name="Settings").click()


def test_with_logins_a_user_sets_their_own_and_only_an_admin_the_servers(login_app, page, browser):
    log_in(page, login_app.url, "bob", "Bob-pw-settings")
    expect(page.locator("#settings_note")).to_contain_text("your own")
    expect(page.locator("#setting_grid_save input")).to_be_disabled()  # the server's: an admin's to change
    page.locator("#setting_samples_format").get_by_label("webp").check()
    page.locator("#settings_apply").click()
    expect(page.locator("#settings_status")).to_contain_text("Saved (your own)")
    preferences = json.loads((login_app.root / "user-preferences.json").read_text())
    assert preferences["bob"]["samples_format"] == "webp"
    assert not (login_app.root / "config.json").exists() or "samples_format" not in json.loads(
        (login_app.root / "config.json").read_text())

    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    log_in(other, login_app.url, "alice", "Alice-pw-settings")
    expect(other.locator("#setting_samples_format").get_by_label("png")).to_be_checked()  # bob's is his
    expect(other.locator("#setting_grid_save input")).to_be_enabled()
    other.locator("#setting_grid_save input").uncheck()
    other.locator("#settings_apply").click()
    expect(other.locator("#settings_status")).to_contain_text("Saved (the server's)")
    assert json.loads((login_app.root / "config.json").read_text())["grid_save"] is False
    other.context.close()


def test_fp8_weight_set_in_settings_stores_the_next_loads_denoiser_in_fp8(app, page):
    page.goto(app.url)
    page.get_by_role("tab", name="Settings").click()
    page.locator("#setting_fp8_storage").get_by_label("Enable", exact=True).check()
    page.locator("#settings_apply").click()
    expect(page.locator("#settings_status")).to_contain_text("Saved")
    assert json.loads(app.settings_file.read_text())["fp8_storage"] == "Enable"

    page.get_by_role("tab", name="txt2img").click()
    fill_small_job(page, "a red circle on a white background")
    page.locator("#txt2img_generate").click()
    expect(page.locator("#txt2img_gallery img").first).to_be_visible()
    page.get_by_role("tab", name="Models").click()
    page.locator("#models_refresh").click()
    expect(page.locator("#models_components")).to_contain_text("float8_e4m3fn")  # the UNet's "Stored as"
    page.get_by_role("tab", name="Settings").click()
    page.locator("#setting_fp8_storage").get_by_label("Disable").check()
    page.locator("#settings_apply").click()
    expect(page.locator("#settings_status")).to_contain_text("Saved")
