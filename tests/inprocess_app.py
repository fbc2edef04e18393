"""The app in the test's own process: webui.main on a free loopback port, so a test can reach the live app's
route table and backend (its jobs) while it talks HTTP to it; or the API app alone over a test's backend, reached
through FastAPI's TestClient (`make_app`, `api_client`)."""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from types import SimpleNamespace

from tests.app_process import free_port


@contextlib.contextmanager
def running_app(*flags: str, env: dict[str, str | None] | None = None):
    """Yields .url, .backend, .demo and .app (the Gradio app that serves the UI and /sdapi/v1; with --nowebui,
    the API's own app, and .demo is None)."""
    import webui

    env = {"GRADIO_TEMP_DIR": None, **(env or {})}  # None: unset while the app runs
    env_keys = set(env) | {"GRADIO_TEMP_DIR"}  # the app sets GRADIO_TEMP_DIR itself: put it back after
    saved = {key: os.environ.get(key) for key in env_keys}
    for key, value in env.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    port = free_port()
    try:
        backend, served = webui.main([*flags, "--port", str(port)], block=False)
        api_only = "--nowebui" in flags  # `served` is then the API's server, not a Gradio demo
        app = served.server.config.app if api_only else served.app
        try:
            yield SimpleNamespace(url=f"http://127.0.0.1:{port}", backend=backend, demo=None if api_only else served,
                                  app=app, server=served.server)
        finally:
            served.stop() if api_only else served.close()
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def make_app(backend, settings_file: Path, *flags: str):
    """The app `webui.py --nowebui <flags>` serves over `backend`, its settings saved in `settings_file`."""
    from modules import cmd_args
    from modules.api.server import create_api_app

    app, _api = create_api_app(backend, cmd_args.parse_args(["--nowebui", *flags]), settings_file)
    return app


@contextlib.contextmanager
def app_client(backend, settings_file: Path, *flags: str):
    """A client of `make_app(backend, settings_file, *flags)`; the backend's settings are put back as they were
    after (the app reads its own settings file, an options route saves others)."""
    from fastapi.testclient import TestClient

    before = backend.settings
    try:
        with TestClient(make_app(backend, settings_file, *flags)) as client:
            yield client
    finally:
        backend.use_settings(before)


@contextlib.contextmanager
def api_client(backend, work: Path, *flags: str):
    """A client of the API app as a launched server has it: `backend`'s models folder, its outputs and settings
    under `work`, no model loaded at the start, a loopback address (the only kind the security guard serves); an
    error in a route is its 500 answer, not an exception in the test."""
    from starlette.testclient import TestClient

    app = make_app(backend, work / "config.json", "--models-dir", str(backend.config.models_dir),
                   "--outdir", str(work / "outputs"), "--skip-load-model-at-start", *flags)
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        yield client


def live_routes(app) -> list[tuple[str, str, str]]:
    """(kind, method, path) of every route the app serves, included routers and mounts too;
    kind is "http" or "websocket"; a mount is listed by its prefix with method "*"."""
    from starlette.routing import Mount, WebSocketRoute

    found = []
    for route in getattr(app, "routes", []):
        original = getattr(route, "original_router", None)
        if original is not None:
            found += live_routes(original)
        elif isinstance(route, WebSocketRoute):
            found.append(("websocket", "GET", route.path))
        elif isinstance(route, Mount):
            found.append(("http", "*", route.path))
        elif getattr(route, "methods", None):
            found += [("http", method, route.path) for method in sorted(route.methods)]
    return sorted(set(found))


def concrete(path: str) -> str:
    """A path template with every parameter filled in ("/file={path:path}" -> "/file=x")."""
    return re.sub(r"\{[^}]+\}", "x", path)


def endpoint_data(url: str, endpoint: str, values: list, session=None) -> list:
    """`values` for the first inputs of a Gradio endpoint and the defaults for the rest, as gradio_client
    fills them in (a raw HTTP call must send them all)."""
    import requests

    info = (session or requests).get(f"{url}/gradio_api/info", timeout=30).json()["named_endpoints"][f"/{endpoint}"]
    return list(values) + [p.get("parameter_default") for p in info["parameters"][len(values):]]
