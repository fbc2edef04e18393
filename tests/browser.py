"""Playwright driving Debian's Chromium (never a downloaded browser), headless."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic"]
# Screenshots go to tests/.artifacts; with ZOO_UPDATE_SCREENSHOTS=1 they refresh the README's pictures.
SCREENSHOTS = (Path(__file__).resolve().parent.parent / "docs" / "screenshots"
               if os.environ.get("ZOO_UPDATE_SCREENSHOTS") == "1"
               else Path(__file__).resolve().parent / ".artifacts")


def chromium_path() -> str:
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not path:
        pytest.fail("Debian chromium is not installed: run `apt-get install chromium` (.ci/run does)")
    return path


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import expect, sync_playwright

    # A first page load of the whole UI can pass 5 s (expect's default) while the other test process is busy.
    expect.set_options(timeout=30_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    yield page
    context.close()


def set_slider(page, elem_id: str, value) -> None:
    """Type into the number box beside a Gradio slider."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def set_slider_after_updates(page, elem_id: str, value, settle_ms: int = 1500, tries: int = 8) -> None:
    """Set a slider that a change event still in flight may reset (e.g. a model pick resetting the layer
    sliders): set it again until it keeps the value for `settle_ms`."""
    box = page.locator(f"#{elem_id} input[type=number]")
    for _ in range(tries):
        set_slider(page, elem_id, value)
        page.wait_for_timeout(settle_ms)
        if box.input_value() == str(value):
            return
    raise AssertionError(f"{elem_id} did not keep the value {value}: it shows {box.input_value()}")


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)
