"""A user in a real browser behind --gradio-auth: the login page logs in (its multipart form passes the
one-username check, its Origin the cross-site check), the session cookie is SameSite=Lax, the app works
(a queue join from the page), and logging out shows the login page again."""
from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import expect

from tests.inprocess_app import running_app
from tests.test_extensions_fixtures import example_enabled_state

pytestmark = pytest.mark.browser
USER, PASSWORD = "alice", "Corr3ct-Horse-browser"


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-login")
    models = root / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    shutil.copytree(models_dir / "Stable-diffusion" / "tiny-sd15", models / "Stable-diffusion" / "tiny-sd15")
    with running_app("--gradio-auth", f"{USER}:{PASSWORD}", "--models-dir", str(models), "--outdir",
                     str(root / "outputs"), "--skip-load-model-at-start", "--offline",
                     env={"ZOO_SETTINGS_FILE": str(root / "config.json"),
                          "ZOO_EXTENSIONS_STATE": example_enabled_state(root / "extensions.json")}) as live:
        yield live


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_log_in_use_the_app_and_log_out(app, page, name):
    url = app.url.replace("127.0.0.1", name)
    page.goto(url)
    page.get_by_label("username").fill(USER)
    page.get_by_label("password").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    page.get_by_role("tab", name="Example").click()
    page.locator("#example_tab_name textarea").fill("Ada")
    page.locator("#example_tab_greet").click()
    expect(page.locator("#example_tab_greeting")).to_contain_text("Hello, Ada!")
    cookies = [c for c in page.context.cookies() if c["name"].startswith("access-token")]
    assert cookies and all(c["sameSite"] == "Lax" for c in cookies), cookies
    page.goto(url + "/logout")
    expect(page.get_by_role("button", name="Login")).to_be_visible()
