"""A user in a real browser: the "Schedule type" dropdown of txt2img and img2img, the variation seed behind
"Extra", Hires fix's own schedule type, and the Restore faces checkbox; results read from the page: the
infotext under the picture and the picture's pixels as the browser received them."""
from __future__ import annotations

import io
import re
from urllib.parse import urljoin

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.app_process import AppProcess
from tests.browser import screenshot, set_slider

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The built-in zoo-shapes model (trained: its pictures follow the sampling; a random-weight one hardly does)."""
    from modules.paths import MODELS_DIR

    shapes = MODELS_DIR / "Stable-diffusion" / "zoo-shapes"
    if not (shapes / "model_index.json").exists():
        pytest.skip("the built-in zoo-shapes weights are not here")
    models = tmp_path_factory.mktemp("browser-sampling-models")
    (models / "Stable-diffusion").mkdir()
    (models / "Stable-diffusion" / "zoo-shapes").symlink_to(shapes, target_is_directory=True)
    outdir = tmp_path_factory.mktemp("browser-sampling")
    with AppProcess("--models-dir", str(models), "--outdir", str(outdir), "--ckpt", "zoo-shapes") as app:
        yield app


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("sampling-input") / "square.png"
    image = Image.new("RGB", (32, 32), "black")
    image.paste((30, 60, 220), (8, 8, 24, 24))
    image.save(path)
    return path


def pick(page, elem_id: str, value: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=value, exact=True).click()
    expect(page.locator(f"#{elem_id} input")).to_have_value(value)


def small_job(page, tab: str, prompt: str, seed: int) -> None:
    page.locator(f"#{tab}_prompt textarea").fill(prompt)
    set_slider(page, f"{tab}_steps", 8)
    if tab == "txt2img":
        set_slider(page, "txt2img_width", 32)
        set_slider(page, "txt2img_height", 32)
    page.locator(f"#{tab}_seed input").fill(str(seed))


def red_circle_on_white(picture: np.ndarray) -> bool:
    """Some clearly red pixels (the shape), and white around it (most of the picture)."""
    r, g, b = picture[..., 0], picture[..., 1], picture[..., 2]
    red = (r > 150) & (g < 110) & (b < 110)
    white = picture.min(axis=2) > 200
    return red.sum() >= 4 and white.mean() > 0.6


def generate(page, tab: str, infotext: re.Pattern) -> tuple[str, np.ndarray]:
    """Press Generate, wait for the infotext, and return it with the shown picture's pixels."""
    page.locator(f"#{tab}_generate").click()
    box = page.locator(f"#{tab}_infotext textarea")
    expect(box).to_have_value(infotext)
    image = page.locator(f"#{tab}_gallery img").first
    expect(image).to_be_visible()
    answer = page.request.get(urljoin(page.url, image.get_attribute("src")))
    assert answer.ok, answer.status
    return box.input_value(), np.asarray(Image.open(io.BytesIO(answer.body())).convert("RGB"), dtype=np.float32)


def test_txt2img_schedule_type_karras_changes_the_picture_and_is_recorded(app, page):
    page.goto(app.url)
    small_job(page, "txt2img", "a red circle on a white background", 42)
    pick(page, "txt2img_sampler", "Euler")
    expect(page.locator("#txt2img_scheduler input")).to_have_value("Automatic")
    text, automatic = generate(page, "txt2img", re.compile(r"Sampler: Euler, .*Seed: 42"))
    assert "Schedule type" not in text  # Euler's Automatic is a plain uniform schedule: A1111 writes none
    pick(page, "txt2img_scheduler", "Karras")
    text, karras = generate(page, "txt2img", re.compile(r"Sampler: Euler, Schedule type: Karras, .*Seed: 42"))
    assert automatic.shape == karras.shape == (32, 32, 3)
    # Both draw the prompt (a trained model gets there either way); Karras's other noise levels move pixels.
    for drawn in (automatic, karras):
        assert red_circle_on_white(drawn)
    moved = np.abs(automatic - karras).max(axis=2) > 8
    assert moved.sum() >= 3, moved.sum()
    screenshot(page, "txt2img-schedule-type")
    # A sampler that cannot take Karras: the dropdown offers its own schedule types, back on Automatic.
    pick(page, "txt2img_sampler", "Euler a")
    expect(page.locator("#txt2img_scheduler input")).to_have_value("Automatic")


def test_img2img_schedule_type_karras_changes_the_picture_and_is_recorded(app, page, picture):
    page.goto(app.url)
    page.get_by_role("tab", name="img2img", exact=True).first.click()
    page.locator("#img2img_image input[type=file]").set_input_files(str(picture))
    expect(page.locator("#img2img_width input[type=number]")).to_have_value("32")
    small_job(page, "img2img", "a blue square on a black background", 12)
    pick(page, "img2img_sampler", "Euler")
    _, automatic = generate(page, "img2img", re.compile(r"Sampler: Euler, .*Seed: 12, .*Denoising strength"))
    pick(page, "img2img_scheduler", "Karras")
    text, karras = generate(page, "img2img", re.compile(r"Sampler: Euler, Schedule type: Karras, .*Seed: 12"))
    moved = np.abs(automatic - karras).max(axis=2) > 8  # the same measure as txt2img's above
    assert moved.sum() >= 3, moved.sum()


def test_extra_shows_the_variation_seed_and_a_strength_changes_the_picture(app, page):
    page.goto(app.url)
    small_job(page, "txt2img", "a blue square on a black background", 77)
    controls = {"txt2img_subseed": "Variation seed", "txt2img_subseed_strength": "Variation strength",
                "txt2img_seed_resize_from_w": "Resize seed from width",
                "txt2img_seed_resize_from_h": "Resize seed from height"}
    for elem_id in controls:
        expect(page.locator(f"#{elem_id}")).to_be_hidden()
    page.locator("#txt2img_subseed_show input").check()
    for elem_id, label in controls.items():
        expect(page.locator(f"#{elem_id}")).to_be_visible()
        expect(page.locator(f"#{elem_id}")).to_contain_text(label)
    page.locator("#txt2img_subseed input").fill("7")
    text, plain = generate(page, "txt2img", re.compile(r"Seed: 77, Size: 32x32"))
    assert "Variation seed" not in text  # strength 0: no variation, as A1111 writes it
    # 0.8: the built-in model draws nearly the same square from noise half-way to another seed's (mean change 0.2)
    set_slider(page, "txt2img_subseed_strength", 0.8)
    text, varied = generate(page, "txt2img", re.compile(r"Seed: 77, .*Variation seed: 7, Variation seed strength: 0.8"))
    assert np.abs(plain - varied).mean() > 1
    screenshot(page, "txt2img-variation-seed")
    # Unticked, the variation is off again whatever the hidden controls hold: the first picture comes back.
    page.locator("#txt2img_subseed_show input").uncheck()
    expect(page.locator("#txt2img_subseed")).to_be_hidden()
    text, again = generate(page, "txt2img", re.compile(r"^(?!.*Variation seed).*Seed: 77, Size: 32x32", re.S))
    assert np.array_equal(plain, again)


def test_hires_schedule_type_is_picked_in_the_hires_fix_accordion(app, page):
    page.goto(app.url)
    small_job(page, "txt2img", "a red circle on a white background", 5)
    pick(page, "txt2img_sampler", "Euler")
    page.locator("#txt2img_hires_fix").get_by_text("Hires. fix", exact=True).first.click()  # open the accordion
    page.locator("#txt2img_enable_hr input[type=checkbox]").check()
    set_slider(page, "txt2img_hires_steps", 4)
    expect(page.locator("#hr_scheduler input")).to_have_value("Use same scheduler")
    _, same = generate(page, "txt2img", re.compile(r"Seed: 5, .*Hires upscaler: Latent"))
    pick(page, "hr_scheduler", "Karras")
    text, karras = generate(page, "txt2img", re.compile(r"Seed: 5, .*Hires schedule type: Karras"))
    assert same.shape == karras.shape == (64, 64, 3)
    assert np.abs(same - karras).mean() > 1


def test_restore_faces_is_next_to_the_other_controls_and_says_where_a_model_goes(app, page):
    page.goto(app.url)
    box = page.locator("#txt2img_restore_faces")
    expect(box).to_contain_text("Restore faces")
    expect(box.locator("input[type=checkbox]")).to_be_disabled()  # no file in models/GFPGAN here
    expect(box).to_contain_text("models/GFPGAN")
    page.get_by_role("tab", name="img2img", exact=True).first.click()
    expect(page.locator("#img2img_restore_faces")).to_contain_text("Restore faces")
    expect(page.locator("#img2img_restore_faces input[type=checkbox]")).to_be_disabled()
