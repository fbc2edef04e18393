"""Take the README's screenshots and its animated GIF from the real app with its built-in models, as a user sees it.

    venv/bin/python docs/take_screenshots.py

Starts webui.py on a free loopback port with the shipped models/, drives Debian's Chromium with Playwright, and
writes docs/screenshots/: one PNG per tab (txt2img, txt2img-hires, img2img, inpaint, extras, pnginfo, latent,
latent-map, latent-traverse, gan, models, extensions), samplers-grid.png (no browser: the backend itself) and
explore.gif (a Latent Explorer slider moved, then a
drag on the GAN seed plane). Each picture is one function below; all of them run in order in one browser.
(The browser tests take their own screenshots of tiny random models into tests/.artifacts.)"""
from __future__ import annotations

import io
import re
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.app_process import AppProcess  # noqa: E402
from tests.browser import CHROMIUM_FLAGS, chromium_path, set_slider  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
WIDTH, HEIGHT = 1400, 1000
RED = "a large red circle in the center on a white background"
BLUE = "a large blue circle in the center on a white background"
GIF_WIDTH = 600


def expect():
    from playwright.sync_api import expect as playwright_expect
    return playwright_expect


def save(page, name: str, top=None, bottom=None, margin: int = 16) -> None:
    """The whole page, cut from `top`'s top to `bottom`'s bottom (elements) when given: long tabs keep their
    controls and their result without the empty rest of the page."""
    page.wait_for_timeout(800)  # images finish painting, toasts and progress bars are gone
    shot = Image.open(io.BytesIO(page.screenshot(full_page=True)))
    y0 = 0 if top is None else max(0, int(page_y(top)["y"]) - 6)
    if bottom is None:
        y1 = min(shot.height, y0 + HEIGHT)
    else:
        boxes = [page_y(b) for b in (bottom if isinstance(bottom, list) else [bottom])]
        y1 = min(shot.height, int(max(b["y"] + b["height"] for b in boxes)) + margin)
    shot.crop((0, y0, shot.width, max(y1, y0 + 200))).save(OUT / f"{name}.png", optimize=True)
    print("wrote", name)


def page_y(locator) -> dict:
    """An element's box in page coordinates (bounding_box is in the viewport's)."""
    return locator.evaluate("e => { const r = e.getBoundingClientRect();"
                            " return {y: r.top + window.scrollY, height: r.height}; }")


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).first.click()
    page.wait_for_timeout(500)


def infotext_has(page, tab: str, text: str) -> None:
    expect()(page.locator(f"#{tab}_infotext textarea")).to_have_value(re.compile(re.escape(text)))


def txt2img_job(page, prompt: str, batch_size: int, seed: int) -> None:
    page.locator("#txt2img_prompt textarea").fill(prompt)
    set_slider(page, "txt2img_width", 32)
    set_slider(page, "txt2img_height", 32)
    set_slider(page, "txt2img_batch_size", batch_size)
    page.locator("#txt2img_seed input").fill(str(seed))
    old = page.locator("#txt2img_infotext textarea").input_value()
    page.locator("#txt2img_generate").click()
    expect()(page.locator("#txt2img_infotext textarea")).not_to_have_value(old)
    expect()(page.locator("#txt2img_gallery img").first).to_be_visible()


def txt2img(page, app) -> None:
    page.goto(app.url)
    txt2img_job(page, RED, 4, 7)
    save(page, "txt2img", bottom=page.locator("#txt2img_infotext"))


def txt2img_hires(page, app) -> None:
    page.goto(app.url)
    page.locator("#txt2img_hires_fix").get_by_text("Hires. fix", exact=True).first.click()
    page.locator("#txt2img_enable_hr input[type=checkbox]").check()
    # An image upscaler and a light second pass: the 32-px model keeps its one circle at 64 px.
    page.locator("#txt2img_hr_upscaler input").click()
    page.get_by_role("option", name="Lanczos", exact=True).click()
    set_slider(page, "txt2img_denoising_strength", 0.2)
    set_slider(page, "txt2img_hr_scale", 2)
    txt2img_job(page, RED, 1, 7)
    infotext_has(page, "txt2img", "Hires upscale")
    save(page, "txt2img-hires", bottom=page.locator("#txt2img_hires_fix"))


def img2img(page, app) -> None:
    page.goto(app.url)
    txt2img_job(page, RED, 1, 7)
    page.locator("#txt2img_send_to_img2img").click()
    expect()(page.locator("#img2img_image img").first).to_be_visible()
    page.locator("#img2img_prompt textarea").fill(BLUE)
    set_slider(page, "img2img_denoising_strength", 0.6)
    page.locator("#img2img_seed input").fill("7")
    page.locator("#img2img_generate").click()
    infotext_has(page, "img2img", "Denoising strength: 0.6")
    expect()(page.locator("#img2img_gallery img").first).to_be_visible()
    save(page, "img2img", bottom=page.locator("#img2img_infotext"))


def inpaint(page, app, picture: Path) -> None:
    page.goto(app.url)
    open_tab(page, "img2img")
    open_tab(page, "Inpaint")
    page.locator("#img2maskimg input[type=file]").set_input_files(str(picture))
    expect()(page.locator("#img2img_height input[type=number]")).to_have_value("32", timeout=60_000)
    canvas = page.locator("#img2maskimg canvas").first
    expect()(canvas).to_be_visible()
    page.wait_for_timeout(800)  # the editor draws the picture before it takes strokes
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.45
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 13):
        page.mouse.move(x + box["width"] * 0.035 * step, y + box["height"] * 0.01 * step, steps=2)
    page.mouse.up()
    page.locator("#img2img_prompt textarea").fill(BLUE)
    page.locator("#img2img_seed input").fill("7")
    page.locator("#img2img_generate").click()
    infotext_has(page, "img2img", "Mask blur")
    expect()(page.locator("#img2img_gallery img").first).to_be_visible()
    save(page, "inpaint", bottom=[page.locator("#img2img_inpaint_controls").first,
                                   page.locator("#img2img_infotext")])


def extras(page, app, picture: Path) -> None:
    page.goto(app.url)
    open_tab(page, "Extras")
    page.locator("#extras_image input[type=file]").set_input_files(str(picture))
    expect()(page.locator("#extras_image img").first).to_be_visible()
    dropdown = page.locator("#extras_upscaler_1 input")
    dropdown.click()
    page.get_by_role("option", name="Lanczos", exact=True).click()
    page.locator("#extras_generate").click()
    expect()(page.locator("#extras_gallery img").first).to_be_visible()
    save(page, "extras", bottom=[page.locator("#extras_generate"), page.locator("#extras_html_info")])


def pnginfo(page, app, picture: Path) -> None:
    page.goto(app.url)
    open_tab(page, "PNG Info")
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(picture))
    expect()(page.locator("#pnginfo_parameters textarea")).not_to_have_value("")
    save(page, "pnginfo", bottom=[page.locator("#pnginfo_send_to_txt2img"), page.locator("#pnginfo_image")])


def open_latent(page, app) -> None:
    page.goto(app.url)
    open_tab(page, "Latent Explorer")
    expect()(page.locator("#latent_image img")).to_be_visible()


def latent(page, app) -> None:
    open_latent(page, app)
    save(page, "latent")


def latent_map(page, app) -> None:
    open_latent(page, app)
    open_tab(page, "Map")
    page.locator("#latent_map").click()
    expect()(page.locator("#latent_scatter img")).to_be_visible(timeout=300_000)
    expect()(page.locator("#latent_manifold img")).to_be_visible()
    save(page, "latent-map", top=page.get_by_role("tab", name="Map"), bottom=page.locator("#latent_map_message"))


def latent_traverse(page, app) -> None:
    open_latent(page, app)
    open_tab(page, "Traverse")
    page.locator("#latent_traverse").click()
    expect()(page.locator("#latent_traverse_grid img")).to_be_visible(timeout=300_000)
    save(page, "latent-traverse", top=page.get_by_role("tab", name="Traverse"),
         bottom=page.locator("#latent_traverse_message"))


def gan(page, app) -> None:
    page.goto(app.url)
    open_tab(page, "GAN Sampler")
    expect()(page.locator("#gan_gallery img").first).to_be_visible()
    pad = page.locator("#gan_plane_pad .gan-pad").bounding_box()  # a drag fills the seed plane's picture
    x, y = pad["x"] + pad["width"] / 2, pad["y"] + pad["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 72, y + 24, steps=6)
    page.mouse.up()
    expect()(page.locator("#gan_plane_image img")).to_be_visible()
    save(page, "gan", bottom=page.locator("#gan_plane_image"))


def models(page, app) -> None:
    page.goto(app.url)
    open_tab(page, "Models")
    expect()(page.locator("#models_table")).to_contain_text("zoo-shapes")
    save(page, "models", bottom=page.locator("#models_message"))


def extensions(page, app) -> None:
    page.goto(app.url)
    open_tab(page, "Extensions")
    expect()(page.locator("#extensions_table")).to_be_visible()
    save(page, "extensions", bottom=page.locator("#extensions_install_box"))


def frame(page, pieces: list[tuple[str, int]]) -> Image.Image:
    """One GIF frame: each (selector, height) piece of the page, scaled into GIF_WIDTH x height, stacked."""
    gap = 8
    canvas = Image.new("RGB", (GIF_WIDTH, sum(h for _, h in pieces) + gap * (len(pieces) + 1)), "white")
    y = gap
    for selector, height in pieces:
        box = page.locator(selector).first.bounding_box()
        piece = Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB")
        piece.thumbnail((GIF_WIDTH - 2 * gap, height), Image.LANCZOS)
        canvas.paste(piece, ((GIF_WIDTH - piece.width) // 2, y + (height - piece.height) // 2))
        y += height + gap
    return canvas


def picture_src(page, selector: str) -> str | None:
    img = page.locator(selector)
    return img.get_attribute("src") if img.count() else None  # the seed plane has none before the first drag


def wait_for_new(page, selector: str, before: str | None) -> None:
    """Until the picture's src changes (a decode came back); a move that lands on the same picture times out
    quietly."""
    try:
        page.wait_for_function("([sel, old]) => { const img = document.querySelector(sel);"
                               " return img && img.complete && img.src !== old; }",
                               arg=[selector, before], timeout=8000)
    except Exception:  # noqa: BLE001 - the same picture again is a fine frame too
        pass


def drag_frames(page, selector: str, start: tuple[float, float], moves: list[tuple[float, float]], shoot) -> list:
    """Press at `start`, move through `moves` (page coordinates), and take a frame after each picture."""
    frames = []
    page.mouse.move(*start)
    page.mouse.down()
    for x, y in moves:
        before = picture_src(page, selector)
        page.mouse.move(x, y, steps=3)
        wait_for_new(page, selector, before)
        page.wait_for_timeout(150)
        frames.append(shoot())
    page.mouse.up()
    return frames


def latent_slider_frames(page, app) -> list:
    open_latent(page, app)
    track = page.locator("#latent_z0 input[type=range]").bounding_box()
    y = track["y"] + track["height"] / 2
    at = [0.5, 0.35, 0.2, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.8, 0.65, 0.5]
    xs = [(track["x"] + track["width"] * f, y) for f in at]
    return drag_frames(page, "#latent_image img", xs[0], xs[1:],
                       lambda: frame(page, [("#latent_z0", 70), ("#latent_image img", 250)]))


def gan_pad_frames(page, app) -> list:
    page.goto(app.url)
    open_tab(page, "GAN Sampler")
    pad_box = page.locator("#gan_plane_pad .gan-pad").bounding_box()
    x, y = pad_box["x"] + pad_box["width"] / 2, pad_box["y"] + pad_box["height"] / 2
    path = [(x + 12 * k, y) for k in range(1, 9)] + [(x + 96, y + 12 * k) for k in range(1, 7)]
    return drag_frames(page, "#gan_plane_image img", (x, y), path,
                       lambda: frame(page, [("#gan_plane_pad", 140), ("#gan_plane_image img", 180)]))


def explore_gif(page, app) -> None:
    """docs/screenshots/explore.gif: a Latent Explorer slider dragged, then a drag on the GAN seed plane."""
    page.set_viewport_size({"width": WIDTH, "height": 1800})  # pad and picture both on screen, no scrolling
    frames = latent_slider_frames(page, app) + gan_pad_frames(page, app)
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    palette = [f.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) for f in frames]
    ms = max(150, min(400, 5800 // len(palette)))
    palette[0].save(OUT / "explore.gif", save_all=True, append_images=palette[1:], duration=ms, loop=0,
                    optimize=True)
    print(f"wrote explore.gif: {len(palette)} frames, {len(palette) * ms / 1000:.1f} s,"
          f" {(OUT / 'explore.gif').stat().st_size // 1024} KB")


def red_circle(page, app, outdir: Path) -> Path:
    """A 32x32 txt2img picture saved with its infotext (made now when the run so far saved none)."""
    def found():
        return [p for p in sorted(outdir.rglob("txt2img-images/*/*.png"))
                if "grid" not in p.name and Image.open(p).size == (32, 32)]
    if not found():
        page.goto(app.url)
        txt2img_job(page, RED, 1, 7)
    return found()[0]


def samplers_grid() -> None:
    """samplers-grid.png: every sampler (rows) with every schedule type (columns) on the built-in model, one
    seed and prompt, drawn by the X/Y/Z plot's own grid code; a schedule type a sampler does not take is grey.
    Runs the backend directly (the same txt2img job as the tab), no browser."""
    import importlib.util

    from modules.backend import Backend, BackendConfig
    from modules.capabilities.txt2img.request import Txt2ImgRequest
    from modules.devices import device_config
    from modules.generation.samplers import AUTOMATIC, SAMPLERS, schedule_labels
    from modules.paths import MODELS_DIR

    spec = importlib.util.spec_from_file_location("xyz_grid", ROOT / "extensions" / "xyz_plot" / "xyz_grid.py")
    grid = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = grid
    spec.loader.exec_module(grid)
    work = Path(tempfile.mkdtemp(prefix="samplers-grid-"))
    backend = Backend(BackendConfig(models_dir=MODELS_DIR, outdir=work / "outputs", cache_dir=work / "cache",
                                    devices=device_config("cpu"), offline=True))
    columns = schedule_labels()
    cells = []
    for sampler in SAMPLERS:
        row = []
        for schedule in columns:
            if schedule != AUTOMATIC and schedule not in sampler.schedules:
                row.append(Image.new("RGB", (32, 32), (200, 200, 200)))
                continue
            request = Txt2ImgRequest(prompt="a red circle on a white background", sampler=sampler.name,
                                     scheduler=schedule, steps=20, cfg_scale=7, width=32, height=32, seed=1,
                                     checkpoint="zoo-shapes", save_images=False)
            row.append(backend.txt2img(request).images[0])
        cells.append(row)
        print("drew", sampler.name)
    picture = grid.draw_grid(cells, columns, [s.name for s in SAMPLERS],
                             "zoo-shapes: a red circle on a white background, seed 1, 20 steps, CFG 7")
    picture.save(OUT / "samplers-grid.png", optimize=True)
    print("wrote samplers-grid")


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    if not sys.argv[1:] or "samplers-grid" in sys.argv[1:]:
        samplers_grid()
        if sys.argv[1:] == ["samplers-grid"]:
            return
    outdir = Path(tempfile.mkdtemp(prefix="screenshots-"))
    with AppProcess("--outdir", str(outdir)) as app, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.set_default_timeout(180_000)
        expect().set_options(timeout=180_000)  # generations are slow on a busy CPU
        only = set(sys.argv[1:])  # names of pictures to redo; none: all
        # Models before the Latent Explorer's Map: its table then lists the models, not derived data too.
        for shoot in (txt2img, txt2img_hires, img2img, gan, models, extensions, latent, latent_map,
                      latent_traverse, explore_gif):
            if not only or shoot.__name__.replace("_", "-") in only:
                shoot(page, app)
        picture = red_circle(page, app, outdir) if not only or only & {"inpaint", "extras", "pnginfo"} else None
        for shoot in (inpaint, extras, pnginfo):
            if not only or shoot.__name__ in only:
                shoot(page, app, picture)
        browser.close()


if __name__ == "__main__":
    main()
