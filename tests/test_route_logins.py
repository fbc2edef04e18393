"""Every route of the live app needs the login, in each way the app is served: the UI alone with
--gradio-auth, the UI and the API, and the API alone (--nowebui --api-auth). The walk goes over the live
route table, so routes that extensions add after start (the example extension's /example-tab/saved) and
routes a Gradio upgrade brings are covered without being listed here. Without credentials every route
answers 401, except what the login page itself loads; with them, none does."""
from __future__ import annotations

import shutil

import pytest
import requests

from tests.inprocess_app import concrete, live_routes, running_app
from tests.test_extensions_fixtures import example_enabled_state

USER, PASSWORD = "alice", "Corr3ct-Horse-walk"
API_USER, API_PASSWORD = "bot", "Batt3ry-Staple-walk"
TIMEOUT = 30
EXTENSION_ROUTE = "/example-tab/saved"
# What the login page loads before anyone has logged in (modules/security/guard.py PUBLIC_PATHS and
# PUBLIC_PREFIXES, as they appear in the route table). Serving the API alone, there is no login page.
LOGIN_PAGE_ROUTES = {"/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/manifest.json",
                     "/robots.txt", "/pwa_icon", "/pwa_icon/{size}", "/assets/{path:path}", "/static/{path:path}",
                     "/svelte/{path:path}"}
MODES = {
    "ui": ["--gradio-auth", f"{USER}:{PASSWORD}"],
    "ui+api": ["--api", "--gradio-auth", f"{USER}:{PASSWORD}", "--api-auth", f"{API_USER}:{API_PASSWORD}"],
    "api": ["--nowebui", "--api-auth", f"{API_USER}:{API_PASSWORD}"],
}
# Routes that would stop the server or end the session used for the walk.
NOT_CALLED_WITH_A_LOGIN = {"/logout", "/sdapi/v1/server-kill", "/sdapi/v1/server-stop", "/sdapi/v1/server-restart"}


@pytest.fixture(scope="module", params=list(MODES))
def app(request, models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"walk-{request.param.replace('+', '-')}")
    models = root / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    shutil.copytree(models_dir / "Stable-diffusion" / "tiny-sd15", models / "Stable-diffusion" / "tiny-sd15")
    flags = [*MODES[request.param], "--models-dir", str(models), "--outdir", str(root / "outputs"),
             "--skip-load-model-at-start", "--offline"]
    env = {"ZOO_SETTINGS_FILE": str(root / "config.json"),
           "ZOO_EXTENSIONS_STATE": example_enabled_state(root / "extensions.json")}  # its route is walked too
    with running_app(*flags, env=env) as live:
        live.mode = request.param
        yield live


def call(method: str, url: str, **kwargs) -> int:
    """The status of one request, reading at most the start of the answer (some routes stream for ever);
    0 when an answer does not start within 2 s (an event stream with nothing to say yet: it was let in)."""
    try:
        with requests.request(method, url, stream=True, timeout=(TIMEOUT, 2), allow_redirects=False,
                              **kwargs) as response:
            return response.status_code
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
        return 0


def credentials(app) -> dict:
    """What a logged-in client sends in this mode: the UI's session cookie, the API's Basic login, or both."""
    login = {}
    if app.mode != "api":
        answer = requests.post(f"{app.url}/login", data={"username": USER, "password": PASSWORD}, timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        cookie = "; ".join(f"{k}={v}" for k, v in answer.cookies.items())
        login["headers"] = {"Cookie": cookie}
    if app.mode != "ui":
        login["auth"] = (API_USER, API_PASSWORD)
    return login


def test_every_live_route_needs_the_login(app):
    routes = live_routes(app.app)
    paths = {path for _kind, _method, path in routes}
    assert EXTENSION_ROUTE in paths, "the example extension's route is part of the walk"
    if app.mode != "ui":
        assert {"/sdapi/v1/txt2img", "/docs", "/openapi.json"} <= paths
    if app.mode != "api":
        assert {"/gradio_api/queue/join", "/gradio_api/upload", "/config"} <= paths
    public = set() if app.mode == "api" else LOGIN_PAGE_ROUTES
    login = credentials(app)
    open_without, refused_with = set(), set()
    for kind, method, path in routes:
        assert kind == "http", f"a websocket route {path}: walk it too"
        method = "GET" if method == "*" else method
        url = app.url + concrete(path)
        for cookie in (None, "not-a-session"):  # no login, and a made-up session cookie
            headers = {"Cookie": f"access-token-unsecure-{getattr(app.app, 'cookie_id', 'x')}={cookie}"} \
                if cookie else {}
            if call(method, url, headers=headers) != 401:
                open_without.add((method, path))
        if path not in NOT_CALLED_WITH_A_LOGIN and call(method, url, **login) == 401:
            refused_with.add((method, path))
    assert {path for _method, path in open_without} <= public, f"open without a login: {sorted(open_without)}"
    assert not refused_with, f"refused with the login: {sorted(refused_with)}"


def test_the_extension_route_answers_with_the_login_only(app):
    url = app.url + EXTENSION_ROUTE
    assert requests.get(url, timeout=TIMEOUT).status_code == 401
    answer = requests.get(url, timeout=TIMEOUT, **credentials(app))
    assert answer.status_code == 200 and "count" in answer.json()
