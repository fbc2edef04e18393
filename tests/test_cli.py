"""The command line as a user meets it: A1111 flag names, clear errors, gentle failures."""
from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from modules import cmd_args
from tests.app_process import ROOT, AppProcess, free_port

ALL_FLAGS = ["--listen", "--port", "--server-name", "--share", "--gradio-auth", "--gradio-auth-path", "--api",
             "--api-auth", "--nowebui", "--tls-keyfile", "--tls-certfile", "--device", "--device-id", "--precision",
             "--no-half-vae", "--medvram", "--lowvram", "--ckpt", "--ckpt-dir", "--vae-dir", "--lora-dir",
             "--models-dir", "--outdir", "--skip-load-model-at-start", "--enable-insecure-extension-access", "--offline"]


def test_every_a1111_flag_is_known():
    known = {option for action in cmd_args.build_parser()._actions for option in action.option_strings}
    assert set(ALL_FLAGS) <= known


def test_flag_values_parse():
    args = cmd_args.parse_args(["--listen", "--port", "9000", "--device", "cpu", "--precision", "bf16",
                                "--gradio-auth", "a:b,c:d", "--medvram"])
    assert cmd_args.server_name(args) == "0.0.0.0" and cmd_args.server_port(args) == 9000
    assert cmd_args.gradio_credentials(args) == [("a", "b"), ("c", "d")]
    assert cmd_args.server_port(cmd_args.parse_args(["--nowebui"])) == 7861
    assert cmd_args.server_name(cmd_args.parse_args(["--listen", "--server-name", "10.0.0.5"])) == "10.0.0.5"


def test_auth_file_entries(tmp_path):
    auth = tmp_path / "auth.txt"
    auth.write_text("alice:pw1\nbob:pw2,carol:pw3\n")
    args = cmd_args.parse_args(["--gradio-auth-path", str(auth)])
    assert cmd_args.gradio_credentials(args) == [("alice", "pw1"), ("bob", "pw2"), ("carol", "pw3")]
    with pytest.raises(SystemExit, match="--gradio-auth: expected user:password"):
        cmd_args.gradio_credentials(cmd_args.parse_args(["--gradio-auth", "nopassword"]))


def test_an_unknown_flag_is_an_error():
    run = subprocess.run([sys.executable, "webui.py", "--no-such-flag"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in run.stderr


def test_an_abbreviated_flag_is_not_guessed():
    with pytest.raises(SystemExit):
        cmd_args.parse_args(["--list"])


@pytest.fixture(scope="module")
def empty_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("empty-models")
    (root / "Stable-diffusion").mkdir()
    return root


def test_share_without_a_tunnel_says_so_in_one_line_and_serves_locally(empty_models, tmp_path):
    closed_port = free_port()  # nothing listens here: the tunnel is unreachable, and no traffic leaves the machine
    app = AppProcess("--share", "--models-dir", str(empty_models), "--outdir", str(tmp_path),
                     env={"ZOO_SHARE_PROBE": f"127.0.0.1:{closed_port}"})
    with app:
        assert urllib.request.urlopen(app.url, timeout=30).status == 200
        share_lines = [line for line in app.lines if line.startswith("--share:")]
        assert len(share_lines) == 1 and "no share tunnel could be reached" in share_lines[0]
        assert "serving locally" in share_lines[0]
        # With no model anywhere the app still starts and says where checkpoints go.
        assert any(f"put Stable Diffusion .safetensors files or diffusers folders into {empty_models}" in line
                   for line in app.lines)


def test_listening_on_the_network_without_auth_warns(empty_models, tmp_path):
    app = AppProcess("--listen", "--models-dir", str(empty_models), "--outdir", str(tmp_path))
    with app:
        assert any(line.startswith("WARNING: listening on 0.0.0.0 without --gradio-auth") for line in app.lines)
    app = AppProcess("--listen", "--gradio-auth", "u:p", "--models-dir", str(empty_models), "--outdir", str(tmp_path))
    with app:
        assert not any("without --gradio-auth" in line for line in app.lines)
        assert not any("u:p" in line for line in app.lines)
