"""A user in a real browser: an extension's tab works (with its CSS and JavaScript), the Extensions tab shows
a broken extension's traceback, and the X/Y/Z plot is picked from txt2img's Script dropdown."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import screenshot, set_slider
from tests.inprocess_app import running_app
from tests.test_extensions_fixtures import example_enabled_state, make_extensions_folder

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-extensions")
    folder = make_extensions_folder(root / "extensions")
    env = {"ZOO_EXTENSIONS_DIR": str(folder), "ZOO_EXTENSIONS_STATE": example_enabled_state(root / "state.json"),
           "ZOO_SETTINGS_FILE": str(root / "config.json")}
    with running_app("--models-dir", str(models_dir), "--outdir", str(root / "outputs"), "--ckpt", "tiny-sd15",
                     env=env) as app:  # webui.main in this process: starts in half the time of a new one
        app.state_file = root / "state.json"
        yield app


def test_an_extension_tab_works_with_its_css_and_javascript(app, page):
    page.goto(app.url)
    page.get_by_role("tab", name="Example").click()
    page.locator("#example_tab_name textarea").fill("Ada")
    page.locator("#example_tab_greet").click()
    expect(page.locator("#example_tab_greeting")).to_contain_text("Hello, Ada!")
    assert page.evaluate("document.documentElement.dataset.exampleTab") == "loaded"  # javascript/*.js ran
    size = page.locator("#example_tab_greeting").evaluate("e => getComputedStyle(e).fontSize")
    assert float(size.rstrip("px")) > 16  # style.css applied (1.2em)


def test_the_extensions_tab_reports_a_broken_extension_and_saves_enabled(app, page):
    page.goto(app.url)
    page.get_by_role("tab", name="Extensions").click()
    table = page.locator("#extensions_table")
    broken = table.locator('tr[data-extension="broken_import"]')
    expect(broken).to_have_attribute("data-status", "error")
    expect(broken).to_contain_text("ModuleNotFoundError")
    broken.locator("summary").first.click()
    expect(broken.locator("pre")).to_contain_text("Traceback")
    expect(table.locator('tr[data-extension="xyz_plot"]')).to_have_attribute("data-status", "loaded")
    page.get_by_role("button", name="Install from a git URL").click()
    expect(page.locator("#extensions_install_note")).to_contain_text("restart the app to load it")
    screenshot(page, "extensions")
    page.locator("#extensions_enabled label", has_text="broken_tab").click()
    page.locator("#extensions_apply").click()
    expect(page.locator("#extensions_message")).to_contain_text("disabled: broken_tab")
    assert '"broken_tab"' in app.state_file.read_text()


def test_xyz_plot_from_the_script_dropdown(app, page):
    page.goto(app.url)
    page.locator("#txt2img_prompt textarea").fill("a red circle")
    set_slider(page, "txt2img_steps", 2)
    set_slider(page, "txt2img_width", 64)
    set_slider(page, "txt2img_height", 64)
    page.locator("#txt2img_seed input").fill("5")
    expect(page.locator("#xyz_txt2img_x_values")).to_be_hidden()
    page.locator("#txt2img_script input").click()
    page.get_by_role("option", name="X/Y/Z plot").click()
    expect(page.locator("#xyz_txt2img_x_values")).to_be_visible()
    page.locator("#xyz_txt2img_x_values textarea").fill("5, 6")
    page.locator("#xyz_txt2img_y_type input").click()
    page.get_by_role("option", name="CFG Scale").click()
    page.locator("#xyz_txt2img_y_values textarea").fill("3, 9")
    page.locator("#txt2img_generate").click()
    expect(page.locator("#txt2img_gallery img").first).to_be_visible()
    expect(page.locator("#txt2img_infotext textarea")).to_have_value(re.compile(
        r'Script: X/Y/Z plot, X Type: Seed, X Values: "5, 6", Y Type: CFG Scale, Y Values: "3, 9"'))
    page.locator("#txt2img_script").scroll_into_view_if_needed()
    screenshot(page, "xyz-plot")
