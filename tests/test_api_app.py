"""The API app in process (FastAPI's TestClient): logins on every route, no secret echoed, clear 4xx
answers, options saved to the config file, and mounting that leaves the host app's routes alone."""
from __future__ import annotations

import base64
import io
import json

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin
from pydantic import BaseModel

from modules import cmd_args
from modules.settings import Settings
from tests.inprocess_app import make_app

PASSWORD = "Tr0ub4dor&3-api"
UI_PASSWORD = "ui-only-Secret-9"
AUTH = ("carol", PASSWORD)


@pytest.fixture
def restore_default_checkpoint(backend):
    before = backend.settings
    yield
    backend.use_settings(before)


@pytest.fixture
def client(backend, tmp_path, restore_default_checkpoint):
    app = make_app(backend, tmp_path / "config.json", "--api-auth", f"{AUTH[0]}:{PASSWORD}",
                   "--gradio-auth", f"ui:{UI_PASSWORD}", "--tls-keyfile", "/no/such/key.pem",
                   "--tls-certfile", "/no/such/cert.pem")
    with TestClient(app) as client:
        client.settings_file = tmp_path / "config.json"
        yield client


def api_routes(app) -> list[tuple[str, str]]:
    """Every (method, path) the app serves through FastAPI, routers included (FastAPI ≥ 0.16x keeps an
    included router as one entry that points at the original)."""
    found = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            found += [(method, route.path) for method in sorted(route.methods)]
        elif getattr(route, "original_router", None) is not None:
            found += api_routes(route.original_router)
        elif getattr(route, "methods", None):  # a plain Starlette route, as /docs is
            found += [(method, route.path) for method in sorted(route.methods - {"HEAD"})]
    return found


def png_b64(parameters: str | None = None, **chunks) -> str:
    info = PngImagePlugin.PngInfo()
    for key, value in ({"parameters": parameters} if parameters else {}).items() | chunks.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG", pnginfo=info)
    return base64.b64encode(buffer.getvalue()).decode()


def test_every_route_of_the_app_answers_401_without_the_login(client):
    routes = api_routes(client.app)
    assert ("POST", "/sdapi/v1/txt2img") in routes and ("GET", "/openapi.json") in routes and len(routes) >= 19
    for method, path in routes:
        # Wrong logins under names that are not API users (the throttle answers 429 after 10 failures
        # of one name, and would lock a real user out for the rest of the module).
        for auth in (None, ("mallory", "wrong"), ("nobody", PASSWORD), ("ui", UI_PASSWORD)):
            response = client.request(method, path, auth=auth)
            assert response.status_code == 401 or (auth and response.status_code == 429), (method, path, auth)
            if response.status_code == 401:
                assert response.headers["www-authenticate"] == "Basic"
        # A malformed header is a 401 too, not a 500; and the login is checked before the body is read.
        assert client.request(method, path, headers={"Authorization": "Basic %%%"}).status_code == 401
        assert client.request(method, path, content=b"{not json", headers={"Content-Type": "application/json"}
                              ).status_code == 401


def test_no_answer_echoes_a_password(client):
    seen = []
    for method, path in api_routes(client.app):
        if method == "GET":
            response = client.get(path, auth=AUTH)
            assert response.status_code == 200, path
            seen.append(response.text)
    for text in seen:
        assert PASSWORD not in text and UI_PASSWORD not in text
    flags = client.get("/sdapi/v1/cmd-flags", auth=AUTH).json()
    for name in ("api_auth", "gradio_auth", "tls_keyfile"):
        assert flags[name] == "<redacted>"
    assert flags["gradio_auth_path"] is None and flags["nowebui"] is True
    assert flags["tls_certfile"] == "cert.pem"  # a path outside the app's folders: its name alone


def test_without_api_auth_the_ui_logins_protect_the_api(backend, tmp_path):
    app = make_app(backend, tmp_path / "config.json", "--gradio-auth", f"ui:{UI_PASSWORD}")
    with TestClient(app) as client:
        assert client.get("/sdapi/v1/samplers").status_code == 401
        assert client.get("/sdapi/v1/samplers", auth=("ui", UI_PASSWORD)).status_code == 200


def test_an_open_api_needs_no_login(backend, tmp_path):
    with TestClient(make_app(backend, tmp_path / "config.json")) as client:
        assert client.get("/sdapi/v1/samplers").status_code == 200
        assert client.get("/docs").status_code == 200 and "swagger" in client.get("/docs").text.lower()


def test_options_are_saved_and_read_back_by_a_new_app(backend, tmp_path, restore_default_checkpoint):
    settings = tmp_path / "config.json"
    with TestClient(make_app(backend, settings)) as client:
        changes = {"sd_model_checkpoint": "tiny-sdxl", "CLIP_stop_at_last_layers": 2, "sd_vae": "Automatic"}
        answer = client.post("/sdapi/v1/options", json=changes).json()
        assert answer is None  # as A1111 answers
    assert json.loads(settings.read_text())["sd_vae"] == "Automatic"
    saved = json.loads(settings.read_text())
    assert saved["sd_model_checkpoint"].startswith("tiny-sdxl [") and saved["CLIP_stop_at_last_layers"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name != "config.json"]  # no temp file left behind

    backend.use_settings(Settings(None))  # as after a restart
    with TestClient(make_app(backend, settings)) as client:  # a new app reads the file
        options = client.get("/sdapi/v1/options").json()
    assert options["sd_model_checkpoint"] == saved["sd_model_checkpoint"]
    assert options["sd_checkpoint_hash"] == backend.registry.find("tiny-sdxl").sha256
    assert options["CLIP_stop_at_last_layers"] == 2
    assert backend.default_checkpoint_title() == saved["sd_model_checkpoint"]
    assert backend.manager.resolve(None).title == saved["sd_model_checkpoint"]


def test_a_ckpt_flag_wins_over_the_saved_default(backend, tmp_path, restore_default_checkpoint):
    settings = tmp_path / "config.json"
    settings.write_text(json.dumps({"sd_model_checkpoint": "tiny-sdxl"}))
    with TestClient(make_app(backend, settings, "--ckpt", "tiny-sd15")) as client:
        assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("tiny-sd15 [")


@pytest.mark.parametrize("options, field", [
    ({"sd_model_checkpoint": "no-such-model"}, "sd_model_checkpoint"),
    ({"sd_model_checkpoint": 5}, "sd_model_checkpoint"),
    ({"CLIP_stop_at_last_layers": 0}, "CLIP_stop_at_last_layers"),
    ({"CLIP_stop_at_last_layers": "two"}, "CLIP_stop_at_last_layers"),
])
def test_a_bad_option_is_a_422_and_nothing_is_saved(backend, tmp_path, options, field):
    settings = tmp_path / "config.json"
    with TestClient(make_app(backend, settings)) as client:
        response = client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 3, **options})
    assert response.status_code == 422 and response.json()["field"] == field
    assert not settings.exists()


def test_a_broken_config_file_does_not_stop_the_app(backend, tmp_path):
    settings = tmp_path / "config.json"
    settings.write_text("{not json")
    with TestClient(make_app(backend, settings)) as client:
        assert client.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 1


@pytest.mark.parametrize("body, field, status", [
    ({"width": 4}, "width", 422),  # not a multiple of 8 is rounded down, as A1111 does; below 8 is refused
    ({"width": "wide"}, "width", 422),
    ({"steps": -1}, "steps", 422),
    ({"cfg_scale": 31}, "cfg_scale", 422),
    ({"n_iter": 0}, "n_iter", 422),
    ({"seed": -2}, "seed", 422),
    ({"sampler_index": "Euler z", "sampler_name": None}, "sampler_index", 422),
    ({"task_id": "bad id with spaces"}, "task_id", 422),
    ({"override_settings": {"CLIP_stop_at_last_layers": 20}}, "override_settings.CLIP_stop_at_last_layers", 422),
    ({"override_settings": {"sd_model_checkpoint": ""}}, "override_settings.sd_model_checkpoint", 422),
])
def test_bad_txt2img_fields(backend, tmp_path, body, field, status):
    with TestClient(make_app(backend, tmp_path / "config.json")) as client:
        response = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 3, **body})
    assert response.status_code == status, response.text
    error = response.json()
    assert error["field"] == field and error["detail"].startswith(f"{field}: ")


def test_a_body_that_is_not_json_is_a_422(backend, tmp_path):
    with TestClient(make_app(backend, tmp_path / "config.json")) as client:
        response = client.post("/sdapi/v1/txt2img", content=b"{bad", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["field"] is None
    assert response.json()["detail"].startswith("the request body is not valid JSON")


def test_unknown_a1111_fields_are_accepted_and_echoed(backend, tmp_path):
    body = {"prompt": "x", "width": 64, "height": 64, "steps": 3, "seed": 11, "enable_hr": False, "styles": [],
            "alwayson_scripts": {}, "restore_faces": False, "sampler_name": "Euler a", "scheduler": "Automatic",
            "override_settings": {"sd_model_checkpoint": "tiny-sd15", "sd_vae": "Automatic"}}
    with TestClient(make_app(backend, tmp_path / "config.json")) as client:
        answer = client.post("/sdapi/v1/txt2img", json=body).json()
    assert answer["parameters"]["styles"] == [] and answer["parameters"]["restore_faces"] is False
    with Image.open(io.BytesIO(base64.b64decode(answer["images"][0]))) as image:
        assert "Seed: 11," in image.info["parameters"]


def test_png_info(backend, tmp_path):
    text = "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x768"
    with TestClient(make_app(backend, tmp_path / "config.json")) as client:
        answer = client.post("/sdapi/v1/png-info", json={"image": "data:image/png;base64," + png_b64(text, extra="x")})
        assert answer.status_code == 200
        assert answer.json()["info"] == text and answer.json()["items"] == {"extra": "x"}
        assert answer.json()["parameters"]["Negative prompt"] == "dog"
        assert answer.json()["parameters"]["Size-2"] == "768"
        plain = client.post("/sdapi/v1/png-info", json={"image": png_b64()}).json()
        assert plain == {"info": "", "items": {}, "parameters": {}}
        for bad in ("%%%", base64.b64encode(b"not an image").decode(), ""):
            response = client.post("/sdapi/v1/png-info", json={"image": bad})
            assert response.status_code == 422 and response.json()["field"] == "image"


class Item(BaseModel):
    size: int


def test_mounting_leaves_the_host_apps_routes_and_errors_alone(backend, tmp_path):
    from modules.api.routes import mount_api

    host = FastAPI()

    @host.post("/own")
    def own(item: Item):
        return {"size": item.size}

    args = cmd_args.parse_args(["--api"])
    mount_api(host, backend, args, settings_file=tmp_path / "config.json")
    with TestClient(host) as client:
        assert client.post("/own", json={"size": 3}).json() == {"size": 3}
        assert client.post("/own", json={"size": "x"}).json()["detail"][0]["loc"] == ["body", "size"]  # FastAPI's own
        assert client.post("/sdapi/v1/txt2img", json={"width": "x"}).json()["field"] == "width"
        paths = client.get("/openapi.json").json()["paths"]
        assert "/sdapi/v1/txt2img" in paths and "/own" not in paths
