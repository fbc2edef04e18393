"""--allowed-hosts and --forwarded-allow-ips through the real entry point (webui.py in its own process), for
the UI's server (Gradio's uvicorn) and the API-only one: the named host is served, others get 400, and a
named proxy's X-Forwarded-For gives each client behind it its own login throttle."""
from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from tests.app_process import ROOT, AppProcess

USER, PASSWORD = "alice", "Corr3ct-Horse-cli"
TIMEOUT = 30


@pytest.fixture(scope="module")
def empty_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("no-models")
    (root / "Stable-diffusion").mkdir()
    return root


@pytest.mark.parametrize("mode", [["--gradio-auth", f"{USER}:{PASSWORD}"], ["--nowebui", "--api-auth",
                                                                            f"{USER}:{PASSWORD}"]])
def test_behind_a_named_proxy(empty_models, tmp_path, mode):
    flags = [*mode, "--allowed-hosts", "gpu.example.org", "--forwarded-allow-ips", "127.0.0.1",
             "--models-dir", str(empty_models), "--outdir", str(tmp_path)]
    with AppProcess(*flags) as app:
        page = "/config" if "--nowebui" not in mode else "/sdapi/v1/samplers"
        assert requests.get(app.url + page, headers={"Host": "gpu.example.org"}, timeout=TIMEOUT).status_code == 401
        assert requests.get(app.url + page, headers={"Host": "evil.example"}, timeout=TIMEOUT).status_code == 400

        def try_login(password: str, client: str) -> int:
            headers = {"X-Forwarded-For": client}
            if "--nowebui" in mode:
                return requests.get(app.url + page, auth=(USER, password), headers=headers, timeout=TIMEOUT).status_code
            return requests.post(app.url + "/login", data={"username": USER, "password": password}, headers=headers,
                                 timeout=TIMEOUT).status_code
        statuses = [try_login(f"guess-{i}", "203.0.113.7") for i in range(11)]
        assert statuses[-1] == 429 and 429 not in statuses[:10]
        assert try_login(PASSWORD, "198.51.100.2") == 200  # another client behind the proxy is not locked out


def test_a_bad_value_names_the_flag():
    for flag, value in (("--allowed-hosts", "http://gpu.example.org/"), ("--forwarded-allow-ips", "*")):
        run = subprocess.run([sys.executable, "webui.py", flag, value], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 2 and flag in run.stderr
