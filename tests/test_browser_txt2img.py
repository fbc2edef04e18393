"""A user in a real browser: type a prompt, press Generate, see an image; read it back in PNG Info."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.app_process import AppProcess
from tests.browser import screenshot, set_slider

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("browser-outputs")
    with AppProcess("--models-dir", str(models_dir), "--outdir", str(outdir), "--ckpt", "tiny-sd15") as app:
        app.outdir = outdir
        yield app


def fill_small_job(page, prompt: str) -> None:
    page.locator("#txt2img_prompt textarea").fill(prompt)
    set_slider(page, "txt2img_steps", 4)
    set_slider(page, "txt2img_width", 64)
    set_slider(page, "txt2img_height", 64)
    page.locator("#txt2img_seed input").fill("42")


def test_type_a_prompt_press_generate_see_an_image(app, page):
    page.goto(app.url)
    expect(page.locator("#sd_checkpoint input")).to_have_value(re.compile(r"^tiny-sd15 \[[0-9a-f]{10}\]$"))
    fill_small_job(page, "a red circle on a white background")
    page.locator("#txt2img_generate").click()
    image = page.locator("#txt2img_gallery img").first
    expect(image).to_be_visible()
    expect(page.locator("#txt2img_infotext textarea")).to_have_value(re.compile(
        r"^a red circle on a white background\n"
        r"Steps: 4, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 64x64, Model hash: [0-9a-f]{10}, "
        r"Model: tiny-sd15, Version: "))
    saved = list(app.outdir.rglob("*-42.png"))
    assert len(saved) == 1
    screenshot(page, "txt2img")


def test_a_bad_value_shows_a_message_and_writes_nothing(app, page):
    page.goto(app.url)
    fill_small_job(page, "a blue square")
    before = sorted(app.outdir.rglob("*.png"))
    page.locator("#txt2img_seed input").fill("100000000000000000000")  # over A1111's largest seed, 2**64 - 1
    page.locator("#txt2img_generate").click()
    # An error toast (gr.Error, via @user_errors), naming the field and what to use instead; shown once.
    toast = page.get_by_role("status").filter(has_text="seed: must be between -1 and 18446744073709551615")
    expect(toast).to_have_count(1)
    expect(page.locator("#txt2img_progress")).not_to_contain_text("%")  # the progress bar went away
    assert sorted(app.outdir.rglob("*.png")) == before


def test_png_info_reads_parameters_and_sends_them_to_txt2img(app, page):
    saved = sorted(app.outdir.rglob("*.png"))
    if not saved:
        pytest.skip("needs the image from the Generate test")
    page.goto(app.url)
    page.get_by_role("tab", name="PNG Info").click()
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(saved[0]))
    parameters = page.locator("#pnginfo_parameters textarea")
    expect(parameters).to_have_value(re.compile(r"Seed: 42, Size: 64x64"))
    screenshot(page, "pnginfo")
    page.locator("#pnginfo_send_to_txt2img").click()
    expect(page.locator("#txt2img_prompt textarea")).to_have_value("a red circle on a white background")
    expect(page.locator("#txt2img_seed input")).to_have_value("42")


def test_models_tab_shows_the_loaded_checkpoint_and_unloads_it(app, page):
    page.goto(app.url)
    page.get_by_role("tab", name="Models").click()  # selecting the tab refreshes it
    table = page.locator("#models_table")
    expect(table).to_contain_text("tiny-sd15")
    expect(table).to_contain_text("SD 1.x")
    parts = page.locator("#models_components")  # each weight-holding part: name, dtype, device, size
    for text in ("unet", "text_encoder", "vae", "float32", "cpu"):
        expect(parts).to_contain_text(text)
    screenshot(page, "models")
    page.locator("#models_unload_all").click()
    expect(page.locator("#models_message")).to_contain_text("Unloaded all")
    expect(table).not_to_contain_text("tiny-sd15")


def test_the_refiner_takes_over_and_png_info_sends_it_back(app, page):
    """Refiner accordion: another checkpoint of the same latent space from "Switch at" on; its infotext keys
    (A1111's) come back into the controls through PNG Info."""
    page.goto(app.url)
    fill_small_job(page, "a refined circle")
    page.locator("#txt2img_seed input").fill("43")
    page.locator("#txt2img_refiner").get_by_text("Refiner", exact=True).first.click()  # open the accordion
    page.locator("#txt2img_enable_refiner input").check()
    page.locator("#txt2img_refiner_checkpoint input").click()
    page.get_by_role("option", name=re.compile(r"^tiny-sd15-single\b")).click()
    set_slider(page, "txt2img_refiner_switch_at", 0.5)
    page.locator("#txt2img_generate").click()
    expect(page.locator("#txt2img_gallery img").first).to_be_visible()
    expect(page.locator("#txt2img_infotext textarea")).to_have_value(re.compile(
        r"Seed: 43, .*Refiner: tiny-sd15-single \[[0-9a-f]{10}\], Refiner switch at: 0.5, "))
    screenshot(page, "txt2img-refiner")
    [saved] = list(app.outdir.rglob("*-43.png"))
    page.reload()
    page.get_by_role("tab", name="PNG Info").click()
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(saved))
    expect(page.locator("#pnginfo_parameters textarea")).to_have_value(re.compile(r"Refiner switch at: 0.5"))
    page.locator("#pnginfo_send_to_txt2img").click()
    expect(page.locator("#txt2img_prompt textarea")).to_have_value("a refined circle")
    page.locator("#txt2img_refiner").get_by_text("Refiner", exact=True).first.click()  # open the accordion
    expect(page.locator("#txt2img_enable_refiner input")).to_be_checked()
    expect(page.locator("#txt2img_refiner_checkpoint input")).to_have_value(
        re.compile(r"^tiny-sd15-single\b.* \[[0-9a-f]{10}\]$"))
    expect(page.locator("#txt2img_refiner_switch_at input[type=number]")).to_have_value("0.5")
