"""GET/POST /sdapi/v1/options as A1111 has them: every A1111 key, null from POST, keys we do not act on kept
(bounded), ours checked (a bad value is a 422 naming the key), per-user options with logins; and A1111's
list routes (hypernetworks, face-restorers, extensions, realesrgan-models, refresh-vae, /internal/ping)."""
from __future__ import annotations

import json
import subprocess

import pytest
from fastapi.testclient import TestClient

from modules.a1111_options import defaults
from modules.settings import MAX_UNKNOWN_KEYS, MAX_VALUE_BYTES
from tests.inprocess_app import make_app
from tests.test_extensions_fixtures import REPO_EXTENSIONS, attach_extensions  # noqa: F401 - a fixture


@pytest.fixture
def restore_settings(backend):
    before = backend.settings
    yield
    backend.use_settings(before)


@pytest.fixture
def client(backend, tmp_path, restore_settings):
    with TestClient(make_app(backend, tmp_path / "config.json")) as client:
        client.settings_file = tmp_path / "config.json"
        yield client


def test_every_a1111_key_is_answered_with_its_default(client):
    options = client.get("/sdapi/v1/options").json()
    a1111 = defaults()
    assert len(a1111) > 250
    assert set(a1111) <= set(options)
    assert options["send_seed"] is True and options["samples_format"] == "png" and options["jpeg_quality"] == 80
    assert options["eta_noise_seed_delta"] == 0 and options["sd_vae"] == "Automatic"
    assert options["sd_model_checkpoint"].startswith("tiny-sd15")


def test_a1111s_options_write_round_trip(client):
    """A1111's own test_options_write: flip send_seed, read it back, flip it back; POST answers null."""
    before = client.get("/sdapi/v1/options").json()["send_seed"]
    answer = client.post("/sdapi/v1/options", json={"send_seed": not before})
    assert answer.status_code == 200 and answer.json() is None
    assert client.get("/sdapi/v1/options").json()["send_seed"] is (not before)
    assert json.loads(client.settings_file.read_text())["send_seed"] is (not before)


def test_all_options_written_back_as_read_are_accepted(client):
    """A client that reads every option, changes one and writes them all back (webuiapi's habit)."""
    options = client.get("/sdapi/v1/options").json()
    options["sd_hypernetwork"] = "x"  # a key we do not act on: kept as sent
    options["my_client_flag"] = [1, 2, 3]  # nor A1111's: kept too
    assert client.post("/sdapi/v1/options", json=options).status_code == 200
    again = client.get("/sdapi/v1/options").json()
    assert again["sd_hypernetwork"] == "x" and again["my_client_flag"] == [1, 2, 3]


@pytest.mark.parametrize("key, value", [
    ("samples_format", "gif"), ("samples_format", 3), ("jpeg_quality", 0), ("jpeg_quality", 101),
    ("jpeg_quality", "80"), ("send_seed", "yes"), ("eta_noise_seed_delta", -1), ("eta_noise_seed_delta", 1.5),
    ("sd_vae", "no-such-vae.safetensors"), ("sd_vae", 5), ("grid_save", None), ("show_progress_type", "Approx NNN"),
    ("show_progress_type", None), ("show_progress_type", ["TAESD"]),
])
def test_a_bad_value_of_an_option_we_act_on_is_a_422_naming_it(client, key, value):
    response = client.post("/sdapi/v1/options", json={"send_seed": False, key: value})
    assert response.status_code == 422
    assert response.json()["field"] == key if "field" in response.json() else key in response.text
    assert client.get("/sdapi/v1/options").json()["send_seed"] is True  # nothing saved


def test_options_we_do_not_act_on_are_bounded(client):
    big = client.post("/sdapi/v1/options", json={"sd_hypernetwork": "x" * (MAX_VALUE_BYTES + 1)})
    assert big.status_code == 422 and "sd_hypernetwork" in big.text
    many = {f"client_key_{i}": i for i in range(MAX_UNKNOWN_KEYS + 1)}
    response = client.post("/sdapi/v1/options", json=many)
    assert response.status_code == 422 and "at most" in response.text
    long_key = client.post("/sdapi/v1/options", json={"k" * 500: 1})
    assert long_key.status_code == 422
    for body in ('{"client_key": "x\\udfff"}', '{"x\\udfff": 1}'):  # JSON escapes of an unpaired surrogate
        bad = client.post("/sdapi/v1/options", content=body, headers={"content-type": "application/json"})
        assert bad.status_code == 422 and "surrogate" in bad.text
    assert client.get("/sdapi/v1/options").status_code == 200


def test_image_format_options_are_normalised(client):
    assert client.post("/sdapi/v1/options", json={"samples_format": "JPG", "jpeg_quality": 55.0}).status_code == 200
    options = client.get("/sdapi/v1/options").json()
    assert options["samples_format"] == "jpg" and options["jpeg_quality"] == 55


def test_the_live_preview_method_is_one_of_a1111s_named_in_the_refusal(client):
    refused = client.post("/sdapi/v1/options", json={"show_progress_type": "Approx NNN"})
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert detail.startswith("show_progress_type:") and "'Approx NNN'" in detail
    assert "Full, Approx NN, Approx cheap, TAESD" in detail
    assert client.get("/sdapi/v1/options").json()["show_progress_type"] == "Approx cheap"  # nothing saved
    try:
        assert client.post("/sdapi/v1/options", json={"show_progress_type": "taesd"}).status_code == 200
        assert client.get("/sdapi/v1/options").json()["show_progress_type"] == "TAESD"  # kept as A1111 writes it
    finally:
        client.post("/sdapi/v1/options", json={"show_progress_type": "Approx cheap"})


def test_a1111s_list_routes(client):
    """What A1111's test_get_api_url reads, and the other list routes clients read at start-up."""
    for url in ("cmd-flags", "samplers", "upscalers", "sd-models", "hypernetworks", "face-restorers",
                "realesrgan-models"):
        assert client.get(f"/sdapi/v1/{url}").status_code == 200, url
    assert client.get("/sdapi/v1/hypernetworks").json() == []
    assert client.get("/sdapi/v1/face-restorers").json() == []
    assert client.post("/sdapi/v1/refresh-vae").status_code == 200
    assert client.get("/internal/ping").json() == {}


def test_extensions_are_listed_as_a1111_does(client, backend, attach_extensions):
    attach_extensions(REPO_EXTENSIONS)
    extensions = client.get("/sdapi/v1/extensions").json()
    names = {e["name"]: e for e in extensions}
    assert {e.name for e in backend.extensions.items} == set(names)
    for item in extensions:
        assert set(item) == {"name", "remote", "branch", "commit_hash", "version", "commit_date", "enabled"}
    assert names["xyz_plot"]["enabled"] is True and names["xyz_plot"]["remote"] == ""


def test_an_extension_from_git_shows_its_remote_branch_and_commit(tmp_path):
    from modules.extensions.git_info import git_info

    folder = tmp_path / "ext"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    env = {"GIT_AUTHOR_DATE": "1700000000 +0000", "GIT_COMMITTER_DATE": "1700000000 +0000",
           "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@b", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for command in (["init", "-q", "-b", "main"], ["add", "a.txt"], ["commit", "-q", "-m", "one"],
                    ["remote", "add", "origin", "https://example.com/ext.git"]):
        subprocess.run(["git", *command], cwd=folder, env=env, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, env=env, check=True,
                            capture_output=True, text=True).stdout.strip()
    info = git_info(folder)
    assert (info.remote, info.branch, info.commit_hash, info.commit_date) == (
        "https://example.com/ext.git", "main", commit, 1700000000)
    assert git_info(tmp_path) == type(info)()  # no .git: blanks
