"""Users kept apart in a live app with logins (webui.main, real HTTP): only an admin manages extensions,
through the real Gradio endpoints too; each user's images go to outputs/<user>/ and only that user can
read them or list them; task ids are per user; only an admin changes the server-wide options."""
from __future__ import annotations

import html
import shutil
import uuid

import pytest
import requests

from tests import gradio_raw
from tests.inprocess_app import endpoint_data, running_app
from tests.test_extensions import _bare_repo
from tests.test_extensions_fixtures import REPO_EXTENSIONS, example_enabled_state

ALICE, BOB = ("alice", "Alice-pw-1"), ("bob", "Bob-pw-2")  # alice is the admin
SMALL = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 2, "sampler_name": "Euler a", "seed": 5,
         "override_settings": {"sd_model_checkpoint": "tiny-sd15"}, "save_images": True}


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("users-apart")
    extensions = root / "extensions"
    shutil.copytree(REPO_EXTENSIONS / "example_tab", extensions / "example_tab")
    logins = f"{ALICE[0]}:{ALICE[1]},{BOB[0]}:{BOB[1]}"
    flags = ["--api", "--gradio-auth", logins, "--admin-users", "alice", "--models-dir", str(models_dir),
             "--outdir", str(root / "outputs"), "--skip-load-model-at-start", "--offline"]
    env = {"ZOO_EXTENSIONS_DIR": str(extensions),
           "ZOO_EXTENSIONS_STATE": example_enabled_state(root / "state.json"),
           "ZOO_SETTINGS_FILE": str(root / "config.json")}
    with running_app(*flags, env=env) as live:
        live.root, live.outdir, live.extensions = root, root / "outputs", extensions
        live.alice, live.bob = gradio_raw.login(live.url, *ALICE), gradio_raw.login(live.url, *BOB)
        yield live


def config_of(app, session) -> dict:
    return session.get(f"{app.url}/config", timeout=30).json()


def test_only_an_admin_installs_an_extension_through_the_gradio_endpoint(app, tmp_path):
    repo = _bare_repo(tmp_path)
    install = gradio_raw.event_of(config_of(app, app.bob), "extensions_install")
    _, _, message = gradio_raw.call(app.url, app.bob, install, [str(repo), "from-bob"])
    assert "'bob' is not named in --admin-users" in html.unescape(message)
    assert not (app.extensions / "from-bob").exists()  # nothing cloned, no install.py ran

    _, _, message = gradio_raw.call(app.url, app.alice, install, [str(repo), "from-alice"])
    assert "Ran its install.py" in message, message
    assert (app.extensions / "from-alice" / "installed.txt").read_text() == "yes"


def test_only_an_admin_enables_and_disables_extensions_for_everyone(app):
    save = gradio_raw.event_of(config_of(app, app.bob), "extensions_apply")
    _, message = gradio_raw.call(app.url, app.bob, save, [[]])
    assert "'bob' is not named in --admin-users" in html.unescape(message)
    assert app.backend.extensions.find("example_tab").enabled
    _, message = gradio_raw.call(app.url, app.alice, save, [["example_tab"]])
    assert "Saved" in message


def test_the_extensions_tab_shows_the_admin_controls_to_admins_only(app):
    config = config_of(app, app.bob)
    apply_id = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "extensions_apply")
    show = next(e for e in gradio_raw.event_of(config, None) if apply_id in e["outputs"])
    for session, shown in ((app.bob, False), (app.alice, True)):
        enabled, apply, box, note = gradio_raw.call(app.url, session, show, [])
        assert (enabled["interactive"], apply["visible"], box["visible"]) == (shown, shown, shown)
        assert ("--admin-users" in note) is not shown


def api_txt2img(app, auth, **values) -> dict:
    answer = requests.post(f"{app.url}/sdapi/v1/txt2img", json={**SMALL, **values}, auth=auth, timeout=300)
    assert answer.status_code == 200, answer.text
    return answer


def test_each_users_images_go_to_their_folder_and_only_they_can_read_and_list_them(app):
    api_txt2img(app, ALICE, seed=31)
    api_txt2img(app, BOB, seed=32)
    alice_files = sorted((app.outdir / "alice").rglob("*-31.png"))
    bob_files = sorted((app.outdir / "bob").rglob("*-32.png"))
    assert alice_files and bob_files
    assert not [p for p in app.outdir.rglob("*.png") if p.parent.parent.parent == app.outdir]  # none shared

    def read(session, path):
        return session.get(f"{app.url}/gradio_api/file={path}", timeout=30).status_code

    assert read(app.alice, alice_files[0]) == 200 and read(app.bob, bob_files[0]) == 200
    assert read(app.alice, bob_files[0]) == 403 and read(app.bob, alice_files[0]) == 403
    assert requests.get(f"{app.url}/gradio_api/file={bob_files[0]}", auth=ALICE, timeout=30).status_code == 403

    listed = app.alice.get(f"{app.url}/example-tab/saved", timeout=30).json()
    assert listed["paths"] and all("/alice/" in p for p in listed["paths"])
    by_basic = requests.get(f"{app.url}/example-tab/saved", auth=BOB, timeout=30).json()
    assert by_basic["paths"] and all("/bob/" in p for p in by_basic["paths"])


def test_a_ui_job_of_a_logged_in_user_saves_into_their_folder(app):
    generate = gradio_raw.event_of(config_of(app, app.bob), "txt2img_generate")
    data = endpoint_data(app.url, "txt2img", ["tiny-sd15", "a red circle", "", "Euler a", 2, 7, 64, 64, 41, 1, 1],
                         session=app.bob)
    gallery, _, message, *_ = gradio_raw.call(app.url, app.bob, generate, data)
    assert message == "" and len(gallery) == 1
    assert sorted((app.outdir / "bob").rglob("*-41.png")) and not sorted((app.outdir / "alice").rglob("*-41.png"))


def test_task_ids_are_per_user(app):
    task_id = f"mine-{uuid.uuid4().hex[:8]}"
    api_txt2img(app, ALICE, force_task_id=task_id)
    api_txt2img(app, BOB, force_task_id=task_id)  # bob's own task: alice's id is unknown to him, not "in use"
    again = requests.post(f"{app.url}/sdapi/v1/txt2img", json={**SMALL, "force_task_id": task_id}, auth=ALICE,
                          timeout=60)
    assert again.status_code == 409 and again.json()["field"] == "task_id"
    progress = requests.get(f"{app.url}/sdapi/v1/progress", params={"task_id": task_id}, auth=BOB, timeout=30)
    assert progress.json()["task_state"] == "done"  # bob's own
    stranger = requests.post(f"{app.url}/sdapi/v1/interrupt", json={"task_id": f"x{task_id}"}, auth=BOB, timeout=30)
    assert stranger.status_code == 404


def test_only_an_admin_changes_the_server_wide_options(app):
    refused = requests.post(f"{app.url}/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 2}, auth=BOB,
                            timeout=30)
    assert refused.status_code == 403 and "--admin-users" in refused.json()["detail"]
    assert requests.get(f"{app.url}/sdapi/v1/options", auth=BOB, timeout=30).json()["CLIP_stop_at_last_layers"] == 1
    done = requests.post(f"{app.url}/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 2}, auth=ALICE, timeout=30)
    assert done.status_code == 200 and done.json() is None
    assert requests.get(f"{app.url}/sdapi/v1/options", auth=BOB, timeout=30).json()["CLIP_stop_at_last_layers"] == 2
    requests.post(f"{app.url}/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 1}, auth=ALICE, timeout=30)


def test_a_user_sets_their_own_per_user_options_through_the_api(app):
    options = f"{app.url}/sdapi/v1/options"
    mine = requests.post(options, json={"samples_format": "webp", "send_seed": False, "client_note": "bob's"},
                         auth=BOB, timeout=30)
    assert mine.status_code == 200 and mine.json() is None
    bob = requests.get(options, auth=BOB, timeout=30).json()
    alice = requests.get(options, auth=ALICE, timeout=30).json()
    assert (bob["samples_format"], bob["send_seed"], bob["client_note"]) == ("webp", False, "bob's")
    assert (alice["samples_format"], alice["send_seed"], alice.get("client_note")) == ("png", True, None)
    mixed = requests.post(options, json={"samples_format": "jpg", "grid_save": False}, auth=BOB, timeout=30)
    assert mixed.status_code == 403 and "grid_save" in mixed.text
    assert requests.get(options, auth=BOB, timeout=30).json()["samples_format"] == "webp"  # nothing saved
    requests.post(options, json={"samples_format": "png", "send_seed": True}, auth=BOB, timeout=30)


def test_a_users_checkpoint_pick_is_their_own_default(app):
    single = next(t for t in app.backend.checkpoint_titles() if t.startswith("tiny-sd15-single"))
    config = config_of(app, app.bob)
    pick = gradio_raw.event_of(config, "sd_checkpoint", trigger="input")
    picks = [e for e in config["dependencies"] if e["targets"] == pick["targets"] and not e["outputs"]]
    gradio_raw.call(app.url, app.bob, picks[0], [single])
    checkpoint_id = pick["targets"][0][0]
    restore = next(e for e in gradio_raw.event_of(config, None) if e["outputs"] == [checkpoint_id])
    assert gradio_raw.call(app.url, app.bob, restore, [])[0]["value"] == single  # kept for bob's next visit
    assert "value" not in gradio_raw.call(app.url, app.alice, restore, [])[0]  # alice picked nothing
    assert app.backend.default_checkpoint_title() != single  # the server's default did not move
    body = {**SMALL, "override_settings": {}, "save_images": False, "steps": 1}
    bob_info = requests.post(f"{app.url}/sdapi/v1/txt2img", json=body, auth=BOB, timeout=300).json()["info"]
    alice_info = requests.post(f"{app.url}/sdapi/v1/txt2img", json=body, auth=ALICE, timeout=300).json()["info"]
    assert "tiny-sd15-single" in bob_info and "tiny-sd15-single" not in alice_info
