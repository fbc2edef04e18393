"""Take the README's screenshots from the real app with its built-in models, as a user sees it.

    venv/bin/python docs/take_screenshots.py

Starts webui.py on a free loopback port with the shipped models/, drives Debian's Chromium with
Playwright, and writes docs/screenshots/{txt2img,gan,latent,pnginfo,models,extensions}.png.
(The browser tests take their own screenshots of tiny random models into tests/.artifacts.)"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.app_process import AppProcess  # noqa: E402
from tests.browser import CHROMIUM_FLAGS, chromium_path  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    outdir = Path(tempfile.mkdtemp(prefix="screenshots-"))
    with AppProcess("--outdir", str(outdir)) as app, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(180_000)
        page.goto(app.url)

        page.locator("#txt2img_prompt textarea").fill("a large red circle in the center on a white background")
        page.locator("#txt2img_batch_size input[type=number]").fill("4")
        page.locator("#txt2img_batch_size input[type=number]").press("Enter")
        page.locator("#txt2img_seed input").fill("7")
        page.locator("#txt2img_generate").click()
        expect(page.locator("#txt2img_gallery img").first).to_be_visible()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(OUT / "txt2img.png"))

        page.get_by_role("tab", name="GAN Sampler").click()
        page.locator("#gan_generate").click()
        page.wait_for_timeout(4000)
        page.screenshot(path=str(OUT / "gan.png"))

        page.get_by_role("tab", name="Latent Explorer").click()
        page.wait_for_timeout(3000)
        page.screenshot(path=str(OUT / "latent.png"))

        saved = sorted(outdir.rglob("*.png"))
        page.get_by_role("tab", name="PNG Info").click()
        if saved:
            page.locator("#pnginfo_image input[type=file]").set_input_files(str(saved[0]))
            page.wait_for_timeout(2000)
        page.screenshot(path=str(OUT / "pnginfo.png"))

        page.get_by_role("tab", name="Models").click()
        page.wait_for_timeout(2000)
        page.screenshot(path=str(OUT / "models.png"))

        page.get_by_role("tab", name="Extensions").click()
        page.wait_for_timeout(2000)
        page.screenshot(path=str(OUT / "extensions.png"))
        browser.close()
    print("wrote", ", ".join(sorted(p.name for p in OUT.glob("*.png"))))


if __name__ == "__main__":
    main()
