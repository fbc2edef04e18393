"""Nothing lost and nothing leaked: a full disk is reported (API `warnings`, the UI's message), no answer names
an absolute server path, and a 500 says "internal error" with an id the log has (no class, no traceback)."""
from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
from types import SimpleNamespace

import pytest
import requests
from fastapi.testclient import TestClient

from modules import images, paths
from modules.errors import BadModelFile, InvalidRequest
from tests.inprocess_app import make_app
from tests.test_extensions_fixtures import example_enabled_state

SMALL = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 2, "seed": 31337,
         "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}


@pytest.fixture
def client(backend, tmp_path):
    with TestClient(make_app(backend, tmp_path / "config.json")) as client:
        yield client


@pytest.fixture
def full_disk(monkeypatch):
    real_save = images.Image.Image.save

    def disk_full(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # part of the file gets written...
        if isinstance(fp, (str, os.PathLike)):  # (a PNG for the answer is made in memory)
            raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(images.Image.Image, "save", disk_full)


def server_folders(*extra) -> list[str]:
    return [str(paths.APP_ROOT), tempfile.gettempdir() + "/", *(str(folder) for folder in extra)]


def assert_no_server_path(text: str, *folders) -> None:
    for folder in server_folders(*folders):
        assert folder not in text, f"{folder} in {text[:300]}"


def test_a_full_disk_is_a_warning_in_the_api_answer_and_the_image_comes_back(client, backend, full_disk):
    response = client.post("/sdapi/v1/txt2img", json={**SMALL, "save_images": True})
    assert response.status_code == 200
    answer = response.json()
    assert len(answer["images"]) == 1
    assert len(answer["warnings"]) == 1 and "could not save seed 31337" in answer["warnings"][0]
    assert "No space left on device" in answer["warnings"][0] and "outputs/txt2img-images/" in answer["warnings"][0]
    assert_no_server_path(response.text, backend.config.outdir)


def test_a_saved_job_has_no_warnings(client):
    answer = client.post("/sdapi/v1/txt2img", json={**SMALL, "save_images": True, "seed": 5}).json()
    assert answer["warnings"] == []


def run_ui_txt2img(backend, seed: int) -> str:
    """The txt2img tab's Generate, called as Gradio calls it; returns the message area's last HTML, or the
    text of the error toast (gr.Error) it raised."""
    import gradio as gr

    from modules.ui.txt2img_tab import Txt2ImgTab

    with gr.Blocks():
        tab = Txt2ImgTab(backend, checkpoint=gr.Dropdown(["tiny-sd15"], value=None))
        tab.build()
    try:
        answers = list(tab._run("tiny-sd15", "a red circle", "", "Euler a", 2, 7.0, 64, 64, seed, 1, 1, "Automatic", False, -1, 0, 0, 0,
                                SimpleNamespace(username=None, session_hash="leaks-test")))
    except gr.Error as toast:
        return toast.message
    return answers[-1][tab.message]


def test_a_full_disk_is_shown_in_the_ui_message_without_the_server_path(backend, full_disk):
    message = run_ui_txt2img(backend, seed=4242)
    assert "could not save seed 4242 to outputs/txt2img-images/" in message and "No space left on device" in message
    assert_no_server_path(message, backend.config.outdir)


def test_an_unexpected_ui_error_is_an_internal_error_with_an_id_in_the_log(backend, monkeypatch, caplog):
    monkeypatch.setattr(backend.manager, "use", lambda *a, **k: (_ for _ in ()).throw(
        KeyError(f"{paths.APP_ROOT}/modules/secret.py")))
    with caplog.at_level(logging.ERROR):
        message = run_ui_txt2img(backend, seed=1)
    error_id = re.search(r"internal error \(id ([0-9a-f]+)\)", message).group(1)
    assert "KeyError" not in message and "secret.py" not in message
    assert any(error_id in record.getMessage() and record.exc_info for record in caplog.records)


def test_an_unexpected_api_error_is_internal_error_with_an_id_that_is_in_the_log(client, backend, monkeypatch,
                                                                                 caplog):
    def broken(*args, **kwargs):
        raise ZeroDivisionError(f"division by zero in {paths.APP_ROOT}/modules/backend.py")

    monkeypatch.setattr(backend, "txt2img", broken)
    with caplog.at_level(logging.ERROR):
        response = client.post("/sdapi/v1/txt2img", json=SMALL)
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal error" and re.fullmatch(r"[0-9a-f]{12}", body["id"])
    assert "ZeroDivisionError" not in response.text and "Traceback" not in response.text
    assert_no_server_path(response.text)
    logged = [r for r in caplog.records if body["id"] in r.getMessage()]
    assert logged and "ZeroDivisionError" in logging.Formatter().format(logged[0])


@pytest.mark.parametrize("error", [
    lambda folder: BadModelFile(folder / "x.safetensors", f"its config folder {folder}/x.config is broken"),
    lambda folder: InvalidRequest("file", f"[Errno 2] No such file or directory: '{folder}/a b/latent.json'"),
])
def test_user_errors_name_files_relative_to_the_app_folders(client, backend, monkeypatch, error):
    folder = backend.config.models_dir / "Stable-diffusion"
    monkeypatch.setattr(backend, "txt2img", lambda *a, **k: (_ for _ in ()).throw(error(folder)))
    response = client.post("/sdapi/v1/txt2img", json=SMALL)
    assert 400 <= response.status_code < 500
    assert_no_server_path(response.text, backend.config.models_dir)
    # Named by the folder's public label: models/ — or ckpt-dir/ when an earlier test in this process passed the
    # same folder as --ckpt-dir (the labels are process-wide); never by its server path (checked above).
    assert any(label in response.text for label in ("models/Stable-diffusion/", "ckpt-dir/", "latent.json"))


def test_no_get_route_of_the_live_api_names_a_server_path(models_dir, tmp_path):
    """Gradio's own routes are left out: its file URLs are absolute paths into its (private) folder."""
    from tests.inprocess_app import concrete, live_routes, running_app

    outputs = tmp_path / "outputs"
    with running_app("--api", "--models-dir", str(models_dir), "--outdir", str(outputs),
                     "--skip-load-model-at-start", env={"ZOO_SETTINGS_FILE": str(tmp_path / "config.json"),
                          "ZOO_EXTENSIONS_STATE": example_enabled_state(tmp_path / "extensions.json")}) as app:
        saved = requests.post(app.url + "/sdapi/v1/txt2img", json={**SMALL, "save_images": True}, timeout=300)
        assert saved.status_code == 200 and list(outputs.rglob("*.png"))
        routes = [path for kind, method, path in live_routes(app.app) if kind == "http" and method == "GET"
                  and (path.startswith("/sdapi/") or path in ("/openapi.json", "/docs", "/example-tab/saved"))]
        assert "/sdapi/v1/sd-models" in routes and "/sdapi/v1/cmd-flags" in routes and "/example-tab/saved" in routes
        answers = {path: requests.get(app.url + concrete(path), timeout=60) for path in routes}
    for path, response in answers.items():
        assert response.status_code < 500, path
        assert_no_server_path(response.text, models_dir, outputs, tmp_path)
    listed = {m["model_name"]: m["filename"] for m in answers["/sdapi/v1/sd-models"].json()}
    assert listed["tiny-sd15-single"] in ("models/Stable-diffusion/tiny-sd15-single.safetensors",
                                          "ckpt-dir/tiny-sd15-single.safetensors")  # see the label note above
    flags = answers["/sdapi/v1/cmd-flags"].json()
    assert flags["models_dir"] == "models" and flags["outdir"] == "outputs"
    assert answers["/example-tab/saved"].json()["paths"][-1].startswith("outputs/txt2img-images/")


def test_a_full_disk_during_a_gan_video_is_named_in_the_ui():
    import gradio as gr

    from modules.ui.errors import user_errors

    error = OSError(errno.ENOSPC, "No space left on device", f"{paths.OUTPUTS_DIR}/gan-videos/x/.saving-1-a.gif")

    @user_errors  # as on every GAN tab handler
    def render_video():
        raise error

    with pytest.raises(gr.Error) as raised:
        render_video()
    message = raised.value.message
    assert "No space left on device" in message and "outputs/gan-videos/x/" in message
    assert_no_server_path(message) and "OSError" not in message


def test_a_bug_inside_an_api_job_is_a_500_with_the_id_the_log_has(client, backend, monkeypatch, caplog):
    monkeypatch.setattr(backend.manager, "use", lambda *a, **k: (_ for _ in ()).throw(
        KeyError(f"{paths.APP_ROOT}/modules/secret.py")))
    with caplog.at_level(logging.ERROR):
        response = client.post("/sdapi/v1/txt2img", json=SMALL)
    body = response.json()
    assert response.status_code == 500 and body["error"] == "internal error" and "secret.py" not in response.text
    assert any(body["id"] in r.getMessage() and r.exc_info for r in caplog.records)
