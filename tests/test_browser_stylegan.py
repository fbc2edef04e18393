"""A user puts NVIDIA's StyleGAN3 network pickle into models/GAN, samples seeds in the GAN Sampler with StyleGAN3's
translate, converts the pickle to .safetensors with the tab's button and gets the very same pictures from it."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.app_process import AppProcess
from tests.browser import screenshot, set_slider, set_slider_after_updates
from tests.stylegan_pickles import nvidia_outputs, write_nvidia_pickle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    models = tmp_path_factory.mktemp("stylegan-browser-models")
    (models / "GAN").mkdir()
    write_nvidia_pickle(models / "GAN" / "sg3t.pkl", "sg3t")
    outdir = tmp_path_factory.mktemp("stylegan-browser-outputs")
    with AppProcess("--models-dir", str(models), "--outdir", str(outdir), "--skip-load-model-at-start") as app:
        app.outdir, app.models = outdir, models
        yield app


def saved_pngs(outdir) -> list:
    # not a file still being written (".saving-…", renamed when complete)
    found = [p for p in (outdir / "gan-images").rglob("*.png") if not p.name.startswith(".")]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns)


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def generate(page, outdir, count_before: int):
    page.locator("#gan_generate").click()
    expect(page.locator("#gan_infotext textarea")).to_have_value(re.compile(r"^Seed: 1, "))
    for _ in range(100):
        if len(saved_pngs(outdir)) > count_before:
            break
        page.wait_for_timeout(100)
    return saved_pngs(outdir)[-1]


def test_sample_a_pickle_with_translate_then_convert_it_to_safetensors(app, page):
    page.goto(app.url)
    page.get_by_role("tab", name="GAN Sampler").click()
    expect(page.locator("#gan_model input")).to_have_value(re.compile(r"^sg3t\.pkl \[[0-9a-f]{10}\]$"))
    expect(page.locator("#gan_noise_mode")).to_be_visible()
    expect(page.locator("#gan_translate_x")).to_be_visible()
    page.locator("#gan_seeds textarea, #gan_seeds input").first.fill("1")
    set_slider(page, "gan_truncation_psi", 0.7)
    first = generate(page, app.outdir, len(saved_pngs(app.outdir)))
    expect(page.locator("#gan_infotext textarea")).to_have_value(re.compile(r"^Seed: 1, Truncation psi: 0.7, "))
    assert int(np.abs(pixels(first) - nvidia_outputs("sg3t")["seed1_png"].astype(np.int16)).max()) <= 1

    page.locator("#gan_translate_x input").fill("0.3")
    page.locator("#gan_translate_y input").fill("-0.2")
    page.locator("#gan_rotate input").fill("20")
    moved = generate(page, app.outdir, len(saved_pngs(app.outdir)))
    assert int(np.abs(pixels(moved) - nvidia_outputs("sg3t")["seed1_tr_png"].astype(np.int16)).max()) <= 1
    expect(page.locator("#gan_infotext textarea")).to_have_value(re.compile(r"Translate: 0.3 -0.2, Rotate: 20"))
    screenshot(page, "stylegan3-translate")

    page.locator("#gan_convert").click()
    expect(page.locator("#gan_message")).to_contain_text("Converted to sg3t.safetensors")
    expect(page.locator("#gan_model input")).to_have_value(re.compile(r"^sg3t\.safetensors \[[0-9a-f]{10}\]$"))
    expect(page.locator("#gan_convert")).to_be_hidden()
    (app.models / "GAN" / "sg3t.pkl").unlink()  # no longer needed
    again = generate(page, app.outdir, len(saved_pngs(app.outdir)))
    assert np.array_equal(pixels(again), pixels(moved))


def test_a_style_mixing_grid_from_the_mix_seed_box(app, page):
    page.goto(app.url)
    page.get_by_role("tab", name="GAN Sampler").click()
    page.locator("#gan_refresh").click()  # the first test converted the pickle and removed it
    expect(page.locator("#gan_model input")).to_have_value(re.compile(r"^sg3t\.safetensors \["))
    page.locator("#gan_seeds textarea, #gan_seeds input").first.fill("1,2,3")
    page.locator("#gan_style_mix_seed textarea, #gan_style_mix_seed input").first.fill("5,6,7,8")
    set_slider_after_updates(page, "gan_style_mix_from", 0)  # the refresh's model change resets the layer sliders
    set_slider_after_updates(page, "gan_style_mix_to", 6)
    page.locator("#gan_generate").click()
    expect(page.locator("#gan_infotext textarea")).to_have_value(
        re.compile(r"Style mix seed: 5, Style mix from: 0, Style mix to: 6"), timeout=30000)
    expect(page.locator("#gan_gallery .caption").first).to_have_text(re.compile(r"^Grid · 12 images"))
    screenshot(page, "stylegan-style-mixing")


def test_a_direction_slider_moves_the_picture(app, page):
    page.goto(app.url)
    page.get_by_role("tab", name="GAN Sampler").click()
    page.locator("#gan_refresh").click()
    expect(page.locator("#gan_model input")).to_have_value(re.compile(r"^sg3t\.safetensors \["))
    page.locator("#gan_seeds textarea, #gan_seeds input").first.fill("2")
    page.locator("#gan_style_mix_seed textarea, #gan_style_mix_seed input").first.fill("")
    page.locator("#gan_generate").click()
    expect(page.locator("#gan_infotext textarea")).to_have_value(re.compile(r"^Seed: 2, "), timeout=30000)
    before = page.locator("#gan_gallery .media-button img").first.get_attribute("src")
    page.locator("#gan_directions").get_by_text("Latent directions").click()
    page.locator("#gan_find_directions").click()
    expect(page.locator("#gan_message")).to_contain_text("SeFa: 5 directions")
    track = page.locator("#gan_direction_1 input[type=range]")
    box = track.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)  # a release at about +8
    expect(page.locator("#gan_infotext textarea")).to_have_value(re.compile(r"Directions: [0-9.]+ on 0-16"),
                                                                 timeout=30000)
    after = page.locator("#gan_gallery .media-button img").first.get_attribute("src")
    assert after != before
    screenshot(page, "stylegan-directions")


def test_project_a_picture_then_a_direction_slider_moves_the_projection(app, page, tmp_path):
    target = tmp_path / "seed1.png"
    Image.fromarray(nvidia_outputs("sg3t")["seed1_png"]).save(target)
    page.goto(app.url)
    page.get_by_role("tab", name="GAN Sampler").click()
    page.locator("#gan_refresh").click()
    expect(page.locator("#gan_model input")).to_have_value(re.compile(r"^sg3t\.safetensors \["))
    page.locator("#gan_style_mix_seed textarea, #gan_style_mix_seed input").first.fill("")
    page.locator("#gan_projection").get_by_text("Image → latent (projection)").click()
    page.locator("#gan_project_image input[type=file]").set_input_files(str(target))
    set_slider(page, "gan_project_steps", 8)
    page.locator("#gan_project").click()
    expect(page.locator("#gan_message")).to_contain_text(re.compile(r"8 steps \(pixels loss\): PSNR [0-9.]+ → [0-9.]+ dB"),
                                                         timeout=60000)
    expect(page.locator("#gan_infotext textarea")).to_have_value(re.compile(r"Latent: projected"))
    before = page.locator("#gan_gallery .media-button img").first.get_attribute("src")
    page.locator("#gan_directions").get_by_text("Latent directions").click()
    page.locator("#gan_find_directions").click()
    expect(page.locator("#gan_message")).to_contain_text("SeFa: 5 directions")
    track = page.locator("#gan_direction_1 input[type=range]")
    box = track.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    expect(page.locator("#gan_infotext textarea")).to_have_value(
        re.compile(r"Latent: projected.*Directions: [0-9.]+ on 0-16"), timeout=30000)
    assert page.locator("#gan_gallery .media-button img").first.get_attribute("src") != before
    screenshot(page, "stylegan-projection")
