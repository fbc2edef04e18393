"""Styles in a real browser: pick one in txt2img's Styles dropdown and generate (the style is in the picture's
infotext), save the prompt as a new style (written to --styles-file in A1111's format), and PNG Info gives the
picture's styles back to the dropdown."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.app_process import AppProcess
from tests.browser import screenshot, set_slider

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("styles-browser")
    styles_file = folder / "my-styles.csv"
    styles_file.write_text('name,prompt,negative_prompt\nrainy,"{prompt} in the rain",sunny\n', encoding="utf-8")
    with AppProcess("--models-dir", str(models_dir), "--outdir", str(folder / "outputs"), "--ckpt", "tiny-sd15",
                    "--styles-file", str(styles_file)) as app:
        app.outdir, app.styles_file = folder / "outputs", styles_file
        yield app


def test_pick_a_style_generate_save_one_and_read_it_back(app, page):
    page.goto(app.url)
    page.locator("#txt2img_prompt textarea").fill("a cat")
    set_slider(page, "txt2img_steps", 2)
    set_slider(page, "txt2img_width", 64)
    set_slider(page, "txt2img_height", 64)
    page.locator("#txt2img_seed input").fill("7")
    page.locator("#txt2img_styles input").click()
    page.get_by_role("option", name="rainy", exact=True).click()
    page.locator("#txt2img_generate").click()
    expect(page.locator("#txt2img_gallery img").first).to_be_visible()
    expect(page.locator("#txt2img_infotext textarea")).to_have_value(re.compile(
        r"^a cat in the rain\nNegative prompt: sunny\nSteps: 2"))
    expect(page.locator("#txt2img_prompt textarea")).to_have_value("a cat")  # applied to the job, not the box
    screenshot(page, "styles")

    # Save the current prompts as a style (this app is bound to this machine, without logins: its owner).
    page.locator("#txt2img_prompt textarea").fill("{prompt}, watercolour")
    page.locator("#txt2img_neg_prompt textarea").fill("photo")
    page.locator("#txt2img_style_save_box").get_by_text("Save as style").click()
    page.locator("#txt2img_style_name input").fill("watercolour")
    page.locator("#txt2img_style_save").click()
    expect(page.locator("#txt2img_style_saved")).to_contain_text("Saved style 'watercolour'")
    assert '"{prompt}, watercolour",photo' in app.styles_file.read_text(encoding="utf-8-sig")

    # PNG Info: the saved picture's prompt goes back without its style, and the style is picked again.
    saved = sorted(app.outdir.rglob("*-7.png"))
    assert saved
    page.get_by_role("tab", name="PNG Info").click()
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(saved[0]))
    expect(page.locator("#pnginfo_parameters textarea")).to_have_value(re.compile(r"^a cat in the rain"))
    page.locator("#pnginfo_send_to_txt2img").click()
    expect(page.locator("#txt2img_prompt textarea")).to_have_value("a cat")
    expect(page.locator("#txt2img_styles")).to_contain_text("rainy")
