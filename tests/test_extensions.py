"""Extensions in process: found and ordered, enabled and disabled (persisted), a broken one reported and
skipped, always-on hooks changing real txt2img jobs (backend and API), callbacks, and the install rule."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from modules import cmd_args
from modules.errors import InvalidRequest
from modules.extensions import Extensions, ScriptCall
from modules.extensions.installer import (
    InstallRefused,
    NotAnAdmin,
    access_refusal,
    install_from_git,
    name_from_url,
    set_enabled,
)
from modules.security.admins import Admins
from modules.generation.infotext import parse_infotext
from tests.inprocess_app import make_app
from tests.test_extensions_fixtures import (ORDERED, attach_extensions, example_enabled_state,  # noqa: F401
                                            make_extensions_folder, write_extension)

TINY = dict(steps=2, width=64, height=64)


def test_discovery_orders_by_metadata_order_then_name(tmp_path):
    write_extension(tmp_path, "zeta", {"a.py": ""}, "order = 1\n")
    write_extension(tmp_path, "beta", {"a.py": ""})                       # default order 100
    write_extension(tmp_path, "alpha", {"a.py": ""})
    write_extension(tmp_path, "gamma", {"a.py": ""}, 'name = "Gamma!"\nversion = "2.1"\norder = 50\n'
                                                     'requirements = ["pillow>=9"]\n')
    write_extension(tmp_path, "bad_toml", {"a.py": ""}, "order = 'soon'\n")
    (tmp_path / ".hidden").mkdir()
    extensions = Extensions.load_from(tmp_path, tmp_path / "state.json")
    assert [e.name for e in extensions.items] == ["zeta", "gamma", "alpha", "bad_toml", "beta"]
    gamma = extensions.find("gamma")
    assert (gamma.title, gamma.version, gamma.requirements, gamma.status) == ("Gamma!", "2.1", ("pillow>=9",), "loaded")
    bad = extensions.find("bad_toml")
    assert bad.status == "error" and "order must be a whole number" in bad.errors[0].message


def test_missing_requirements_are_reported_and_the_extension_skipped(tmp_path):
    write_extension(tmp_path, "needs", {"a.py": "raise SystemExit('must not be imported')"},
                    'requirements = ["no-such-package-zoo>=1", "pillow<1"]\n')
    extension = Extensions.load_from(tmp_path, tmp_path / "state.json").find("needs")
    assert extension.status == "error" and not extension.loaded
    assert "no-such-package-zoo>=1" in extension.errors[0].message and "pillow<1 (found" in extension.errors[0].message


def test_hooks_run_in_extension_order(tmp_path, backend, attach_extensions, small_request):
    write_extension(tmp_path, "second", {"s.py": ORDERED.replace("{name}", "second")}, "order = 2\n")
    write_extension(tmp_path, "first", {"s.py": ORDERED.replace("{name}", "first")}, "order = 1\n")
    attach_extensions(tmp_path)
    result = backend.txt2img(small_request(prompt="a cat", save_images=False, **TINY))
    assert parse_infotext(result.infotexts[0])["Prompt"] == "a cat first second"


def test_disabling_persists_and_the_extension_is_not_loaded_next_time(tmp_path):
    make_extensions_folder(tmp_path / "ext", builtin=False, broken=False)
    write_extension(tmp_path / "ext", "other", {"s.py": ORDERED.replace("{name}", "other")})
    state = tmp_path / "state.json"
    extensions = Extensions.load_from(tmp_path / "ext", state)
    extensions.set_enabled({"probe": False})
    assert extensions.find("probe").status == "disabled"
    assert [s.title() for s in extensions.scripts_for("txt2img")] == ["Append other"]  # hooks stop at once
    with pytest.raises(InvalidRequest, match="unknown extension 'nope'"):
        extensions.set_enabled({"nope": True})
    again = Extensions.load_from(tmp_path / "ext", state)
    assert (again.find("probe").enabled, again.find("probe").loaded) == (False, False)
    assert again.find("other").loaded
    again.set_enabled({"probe": True})
    assert Extensions.load_from(tmp_path / "ext", state).find("probe").loaded


def test_the_example_extension_is_off_until_turned_on(tmp_path):
    folder, state = make_extensions_folder(tmp_path / "ext", broken=False), tmp_path / "state.json"
    fresh = Extensions.load_from(folder, state)
    assert fresh.find("example_tab").status == "disabled" and fresh.ui_tabs() == []
    assert fresh.find("xyz_plot").loaded and fresh.find("probe").loaded  # other extensions stay on by default
    fresh.set_enabled({"example_tab": True})
    assert [title for _, _, title, _ in Extensions.load_from(folder, state).ui_tabs()] == ["Example"]
    Extensions.load_from(folder, state).set_enabled({"example_tab": False})
    assert not Extensions.load_from(folder, state).find("example_tab").enabled


def test_a_broken_extension_is_reported_with_its_traceback_and_the_others_load(tmp_path):
    extensions = Extensions.load_from(make_extensions_folder(tmp_path / "ext"),
                                      example_enabled_state(tmp_path / "state.json"))
    broken = extensions.find("broken_import")
    assert broken.status == "error" and not broken.loaded
    assert broken.errors[0].where == "scripts/broken.py"
    assert "ModuleNotFoundError" in broken.errors[0].message and "Traceback" in broken.errors[0].traceback
    assert {"xyz_plot", "example_tab", "probe", "broken_hook", "broken_tab"} <= {e.name for e in extensions.items
                                                                               if e.loaded}
    assert extensions.find("xyz_plot").script_titles == ["X/Y/Z plot", "X/Y/Z plot"]  # txt2img and GAN
    tabs = extensions.ui_tabs()
    assert [title for _, _, title, _ in tabs] == ["Example"]
    assert "this tab cannot be built" in extensions.find("broken_tab").errors[0].message


def test_probe_hooks_change_the_job_and_a_crashing_hook_is_skipped(tmp_path, backend, attach_extensions,
                                                                   small_request):
    extensions = attach_extensions(make_extensions_folder(tmp_path / "ext", builtin=False))
    probe = next(s for s in extensions.scripts if s.title() == "Probe")
    events = sys.modules[type(probe).__module__].EVENTS
    plain = backend.txt2img(small_request(prompt="a dog", seed=5, save_images=False, **TINY))
    changed = backend.txt2img(small_request(prompt="a dog", seed=5, batch_count=2, **TINY),
                              scripts=ScriptCall(alwayson_scripts={"probe": {"args": ["in a hat", True]}}))
    assert changed.index_of_first_image == 1  # the batch grid, then the images
    first, second = (parse_infotext(text) for text in changed.infotexts[1:])
    assert (first["Prompt"], first["Probe"], first["Probe batch"]) == ("a dog in a hat", "in a hat", "0 5")
    assert second["Probe batch"] == "1 6"
    assert "Probe" not in parse_infotext(plain.infotexts[0])
    # postprocess_image ran before saving: the saved file is the inverted image too
    saved = np.asarray(Image.open(changed.paths[1]).convert("RGB"))
    assert np.array_equal(saved, np.asarray(changed.images[1].convert("RGB")))
    assert ("postprocess", 2) in events and ("saved", changed.paths[2].name) in events
    crash = extensions.find("broken_hook")
    assert any(e.where == "Crashes: process" and "this hook always fails" in e.message for e in crash.errors)


def test_postprocess_image_inverts_the_very_image_a_plain_job_makes(tmp_path, backend, attach_extensions,
                                                                    small_request):
    attach_extensions(make_extensions_folder(tmp_path / "ext", builtin=False, broken=False))
    plain = backend.txt2img(small_request(seed=11, save_images=False, **TINY)).images[0]
    inverted = backend.txt2img(small_request(seed=11, save_images=False, **TINY),
                               scripts=ScriptCall(alwayson_scripts={"Probe": ["", True]})).images[0]
    assert np.array_equal(255 - np.asarray(plain.convert("RGB")), np.asarray(inverted.convert("RGB")))


def test_unknown_scripts_are_refused_naming_the_field(tmp_path, backend, attach_extensions, small_request):
    attach_extensions(make_extensions_folder(tmp_path / "ext", broken=False))
    with pytest.raises(InvalidRequest, match=r"script_name: unknown script 'Nope': one of X/Y/Z plot"):
        backend.txt2img(small_request(**TINY), scripts=ScriptCall(script_name="Nope"))
    with pytest.raises(InvalidRequest, match=r"alwayson_scripts: unknown always-on script 'nope'"):
        backend.txt2img(small_request(**TINY), scripts=ScriptCall(alwayson_scripts={"nope": []}))


def test_the_api_path_runs_the_same_hooks(tmp_path, backend, attach_extensions):
    attach_extensions(make_extensions_folder(tmp_path / "ext", broken=False))
    with TestClient(make_app(backend, tmp_path / "config.json")) as client:
        scripts = client.get("/sdapi/v1/scripts").json()
        assert scripts == {"txt2img": ["x/y/z plot", "probe"], "img2img": []}
        info = {s["name"]: s for s in client.get("/sdapi/v1/script-info").json() if s["tab"] == "txt2img"}
        assert info["probe"]["is_alwayson"]
        assert [a["label"] for a in info["probe"]["args"]] == ["Prompt suffix", "Invert"]
        assert info["x/y/z plot"]["args"][0]["choices"][:3] == ["Nothing", "Seed", "Steps"]
        body = dict(prompt="a fox", seed=3, steps=2, width=64, height=64, save_images=False,
                    override_settings={"sd_model_checkpoint": "tiny-sd15"})
        answer = client.post("/sdapi/v1/txt2img", json={**body, "alwayson_scripts": {"Probe": {"args": ["at night"]}}})
        assert answer.status_code == 200, answer.text
        infotext = answer.json()["info"]
        assert "a fox at night" in infotext and "Probe: at night" in infotext
        bad = client.post("/sdapi/v1/txt2img", json={**body, "script_name": "Nope"})
        assert bad.status_code == 422 and bad.json()["field"] == "script_name"


def test_install_is_refused_on_a_non_loopback_bind_or_a_share_link(tmp_path):
    assert access_refusal(cmd_args.parse_args([])) is None
    assert access_refusal(cmd_args.parse_args(["--server-name", "127.0.0.2"])) is None
    assert "listens on 0.0.0.0" in access_refusal(cmd_args.parse_args(["--listen"]))
    assert "listens on 192.168.1.5" in access_refusal(cmd_args.parse_args(["--server-name", "192.168.1.5"]))
    assert "share link" in access_refusal(cmd_args.parse_args(["--share"]))
    assert access_refusal(cmd_args.parse_args(["--listen", "--share", "--enable-insecure-extension-access"])) is None
    extensions = Extensions.load_from(tmp_path / "ext", tmp_path / "state.json")
    extensions.install_refusal = access_refusal(cmd_args.parse_args(["--listen"]))
    extensions.admins = Admins(frozenset({"root"}))
    with pytest.raises(InstallRefused, match="--enable-insecure-extension-access"):
        install_from_git(extensions, str(tmp_path / "anything.git"), user="root")  # an admin, but on the network
    assert not (tmp_path / "ext").exists() or not any((tmp_path / "ext").iterdir())


def _bare_repo(tmp_path):
    """A bare git repo holding an extension with an install.py (git clone of a local path works offline)."""
    source = tmp_path / "source"
    write_extension(tmp_path, "source", {"hello.py": ORDERED.replace("{name}", "hello")}, 'name = "Hello"\n')
    (source / "install.py").write_text("open('installed.txt', 'w').write('yes')\n", encoding="utf8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=source, check=True)
    subprocess.run([*git, "add", "."], cwd=source, check=True)
    subprocess.run([*git, "commit", "-qm", "hello"], cwd=source, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(tmp_path / "sd-webui-hello.git")], check=True)
    return tmp_path / "sd-webui-hello.git"


def test_install_from_a_git_url_clones_runs_install_py_and_loads_at_the_next_start(tmp_path):
    repo = _bare_repo(tmp_path)
    folder = tmp_path / "ext"
    folder.mkdir()
    extensions = Extensions.load_from(folder, tmp_path / "state.json")
    extensions.install_refusal = access_refusal(cmd_args.parse_args(["--listen", "--enable-insecure-extension-access"]))
    extensions.admins = Admins(frozenset({"root"}))
    assert name_from_url("https://github.com/u/sd-webui-hello.git") == "sd-webui-hello"
    with pytest.raises(NotAnAdmin, match="'guest' is not named in --admin-users"):
        install_from_git(extensions, str(repo), user="guest")
    assert not (folder / "sd-webui-hello").exists()
    extension, message = install_from_git(extensions, str(repo), user="root")
    assert extension.name == "sd-webui-hello" and extension.title == "Hello"
    assert (folder / "sd-webui-hello" / "installed.txt").read_text() == "yes"
    assert "Ran its install.py" in message and "Restart" in message
    with pytest.raises(InvalidRequest, match="exists already"):
        install_from_git(extensions, str(repo), user="root")
    (folder / "sd-webui-hello" / "installed.txt").unlink()
    again = Extensions.load_from(folder, tmp_path / "state.json")
    assert again.find("sd-webui-hello").loaded and [s.title() for s in again.scripts] == ["Append hello"]
    assert not (folder / "sd-webui-hello" / "installed.txt").exists()  # install.py ran once, not at every start


def test_a_failed_clone_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "ext"
    folder.mkdir()
    extensions = Extensions.load_from(folder, tmp_path / "state.json")
    extensions.install_refusal = None
    extensions.admins = Admins(logins=False, local_only=True)  # loopback, no logins: whoever is at the machine
    with pytest.raises(Exception, match="git clone .* failed"):
        install_from_git(extensions, str(tmp_path / "no-such-repo.git"))
    assert list(folder.iterdir()) == []
    with pytest.raises(InvalidRequest, match="url"):
        install_from_git(extensions, "--upload-pack=touch /tmp/x")


def test_who_is_an_admin_follows_the_logins_and_admin_users_flags():
    def admins(*flags):
        return Admins.from_args(cmd_args.parse_args(list(flags)))

    assert admins().allows(None)  # loopback, no logins: the person at this machine
    assert "no logins" in admins("--listen").refusal(None)
    assert "no logins" in admins("--share").refusal(None)
    assert "--admin-users" in admins("--listen", "--enable-insecure-extension-access").refusal(None)
    logins = ("--gradio-auth", "alice:a,bob:b", "--api-auth", "bot:c")
    assert "no user is named in --admin-users" in admins(*logins).refusal("alice")  # logins, no admins: nobody
    assert "not logged in" in admins(*logins, "--admin-users", "alice").refusal(None)
    assert admins(*logins, "--admin-users", "alice,bot").allows("alice")
    assert admins(*logins, "--admin-users", "alice,bot", "--listen").allows("bot")
    assert admins(*logins, "--admin-users", "alice").refusal("bob") == "'bob' is not named in --admin-users"
    with pytest.raises(SystemExit):  # an admin who cannot log in is a typo
        cmd_args.parse_args([*logins, "--admin-users", "carol"])


def test_enabling_and_disabling_for_everyone_is_an_admins_act(tmp_path):
    folder = tmp_path / "ext"
    write_extension(folder, "probe", {"probe.py": ORDERED.replace("{name}", "probe")})
    extensions = Extensions.load_from(folder, tmp_path / "state.json")
    extensions.admins = Admins(frozenset({"alice"}))
    with pytest.raises(NotAnAdmin, match="'bob' is not named in --admin-users"):
        set_enabled(extensions, {"probe": False}, "bob")
    assert extensions.find("probe").enabled
    assert Extensions.load_from(folder, tmp_path / "state.json").find("probe").enabled
    set_enabled(extensions, {"probe": False}, "alice")
    assert not Extensions.load_from(folder, tmp_path / "state.json").find("probe").enabled
