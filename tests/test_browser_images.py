"""What a new user sees first, in a real browser: whole pictures (their own aspect, the bottom row visible)
rendered pixelated in every gallery, the batch grid first, the PNG Info preview at a useful size and one
toast for a file that is no image, a Models table that reads well, the checkpoint picker only in txt2img."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.app_process import AppProcess
from tests.browser import screenshot, set_slider
from tests.test_gan import make_gan

pytestmark = pytest.mark.browser

# For every picture shown: its natural size, the rectangle object-fit: contain draws it in, and whether the
# element at each point of that rectangle's bottom row is the picture itself (no caption or edge over it).
SHOWN = """img => {
  const box = img.getBoundingClientRect(), style = getComputedStyle(img);
  const scale = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight);
  const width = img.naturalWidth * scale, height = img.naturalHeight * scale;
  const left = box.left + (box.width - width) / 2, bottom = box.top + (box.height + height) / 2 - 1;
  const bottomRow = [0.02, 0.25, 0.5, 0.75, 0.98].map(f => document.elementFromPoint(left + f * width, bottom) === img);
  return {natural: [img.naturalWidth, img.naturalHeight], shown: [width, height], fit: style.objectFit,
          rendering: style.imageRendering, bottomRowVisible: bottomRow.every(Boolean), inViewport: bottom < innerHeight};
}"""


def shown(page, selector: str) -> list[dict]:
    """SHOWN for every picture, each scrolled into view and loaded first (galleries load lazily)."""
    pictures = page.locator(selector)
    found = []
    for index in range(pictures.count()):
        picture = pictures.nth(index)
        picture.evaluate("img => img.scrollIntoView({block: 'center'})")
        picture.evaluate("img => img.complete && img.naturalWidth > 0 ? true : new Promise(ok => img.onload = ok)")
        found.append(picture.evaluate(SHOWN))
    return found


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    models = tmp_path_factory.mktemp("images-models")
    import shutil

    (models / "Stable-diffusion").mkdir()
    shutil.copytree(models_dir / "Stable-diffusion" / "tiny-sd15", models / "Stable-diffusion" / "tiny-sd15")
    make_gan(models / "GAN" / "tiny-gan.safetensors")
    outdir = tmp_path_factory.mktemp("images-outputs")
    with AppProcess("--models-dir", str(models), "--outdir", str(outdir), "--ckpt", "tiny-sd15",
                    env={"ZOO_SETTINGS_FILE": str(outdir.parent / "images-config.json")}) as app:
        app.outdir = outdir
        yield app


def assert_whole_and_pixelated(pictures: list[dict]) -> None:
    assert pictures
    for picture in pictures:
        (nw, nh), (w, h) = picture["natural"], picture["shown"]
        assert picture["fit"] == "contain" or abs(w / h - nw / nh) < 0.02, picture
        assert abs(w / h - nw / nh) < 0.02, picture  # the picture's own aspect, not a crop
        assert picture["bottomRowVisible"] and picture["inViewport"], picture
        assert picture["rendering"] == "pixelated", picture


def test_a_2x2_batch_shows_its_grid_first_and_every_picture_whole_and_pixelated(app, page):
    page.goto(app.url)
    page.locator("#txt2img_prompt textarea").fill("a red star")
    set_slider(page, "txt2img_steps", 2)
    set_slider(page, "txt2img_width", 64)
    set_slider(page, "txt2img_height", 64)
    set_slider(page, "txt2img_batch_count", 2)
    set_slider(page, "txt2img_batch_size", 2)
    page.locator("#txt2img_seed input").fill("7")
    page.locator("#txt2img_generate").click()
    expect(page.locator("#txt2img_gallery img")).to_have_count(5)  # the grid, then the four images
    pictures = shown(page, "#txt2img_gallery img")
    assert pictures[0]["natural"] == [128, 128] and all(p["natural"] == [64, 64] for p in pictures[1:])
    assert_whole_and_pixelated(pictures)
    expect(page.locator("#txt2img_gallery .caption-label").first).to_have_text("Grid")
    assert len(list((app.outdir / "txt2img-grids").rglob("*.png"))) == 1
    screenshot(page, "txt2img-batch")


def test_the_gan_gallery_is_pixelated_and_whole(app, page):
    page.goto(app.url)
    page.get_by_role("tab", name="GAN Sampler").click()
    page.locator("#gan_seeds textarea").fill("0-3")
    page.locator("#gan_generate").click()
    # The tab opens on every class at seed 0; seeds 0-3 give more pictures (a grid first, then each one).
    page.wait_for_function("() => document.querySelectorAll('#gan_gallery img').length > 8")
    for picture in shown(page, "#gan_gallery img"):
        assert picture["rendering"] == "pixelated", picture


def test_png_info_shows_the_picture_large_and_a_bad_file_is_one_toast(app, page, tmp_path):
    saved = sorted((app.outdir / "txt2img-images").rglob("*.png"))
    if not saved:
        pytest.skip("needs the images of the batch test")
    page.goto(app.url)
    page.get_by_role("tab", name="PNG Info").click()
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(saved[0]))
    expect(page.locator("#pnginfo_parameters textarea")).to_have_value(re.compile(r"Seed: \d+, Size: 64x64"))
    preview = page.locator("#pnginfo_image img")
    box = preview.bounding_box()
    assert box["width"] >= 256 and box["height"] >= 256, box  # not a 16-px dot
    assert preview.evaluate("e => getComputedStyle(e).imageRendering") == "pixelated"
    screenshot(page, "pnginfo-preview")

    page.goto(app.url)
    page.get_by_role("tab", name="PNG Info").click()
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(notes))
    toast = page.locator(".toast-body")
    expect(toast.first).to_contain_text("notes.png cannot be read as an image: choose a PNG, JPEG or WEBP picture")
    page.wait_for_timeout(1500)  # a second toast would have come by now
    text = " ".join(toast.all_inner_texts())
    assert text.count("cannot be read") == 1, text
    assert "ComponentProcessingError" not in text and "/" not in text.replace("PNG, JPEG", ""), text


def test_models_table_headers_whole_words_no_empty_columns_and_a_calm_unload(app, page):
    page.goto(app.url)
    page.get_by_role("tab", name="Models").click()
    table = page.locator("#models_table")
    expect(table).to_contain_text("tiny-sd15")
    # Each word of each header on one line: a Range over a word has one line box.
    broken = table.evaluate("""t => [...t.querySelectorAll('th')].flatMap(th => {
      const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT), out = [];
      for (let node; (node = walker.nextNode());) {
        for (const m of node.textContent.matchAll(/\\S+/g)) {
          const range = document.createRange(); range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
          const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
          if (tops.size > 1) out.push(m[0]);
        }
      }
      return out; })""")
    assert broken == []
    headers = [h.strip() for h in table.locator("th").all_inner_texts() if h.strip()]
    assert headers[:5] == ["Model", "Kind", "Architecture", "Where", "Size (MB)"]
    empty = table.evaluate("""t => { const rows = [...t.querySelectorAll('[role=row].virtual-row')];
      const cells = rows.map(r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim()));
      return cells.length ? [...cells[0].keys()].filter(i => cells.every(row => !row[i])) : ['no rows']; }""")
    assert empty == []
    message = page.locator("#models_message")
    page.locator("#models_unload_all").click()
    expect(message).to_contain_text("Unloaded all")
    page.locator("#models_unload").click()  # nothing cached, nothing picked
    expect(message.locator(".zoo-info")).to_contain_text("Pick a cached model above to unload it")
    expect(message.locator(".zoo-error")).to_have_count(0)
    assert message.evaluate("e => getComputedStyle(e.querySelector('[data-testid=status-tracker]')).display") == "none"
    screenshot(page, "models")


def test_the_checkpoint_picker_is_in_the_txt2img_tab_only(app, page):
    page.goto(app.url)
    expect(page.locator("#tab_txt2img #sd_checkpoint")).to_be_visible()
    for tab in ("GAN Sampler", "Latent Explorer"):
        page.get_by_role("tab", name=tab).click()
        expect(page.locator("#sd_checkpoint")).to_be_hidden()
