"""Password guessing cannot sidestep the login throttle: not with decoy `username` fields (Gradio checks
the last, the throttle once counted the first), not in multipart forms, not with a user name in the query
string, and not by changing X-Forwarded-For / Forwarded / X-Real-IP (uvicorn believed X-Forwarded-For
from 127.0.0.1, where an SSH tunnel connects from). And one address's failures never lock the user out
from another address."""
from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
from urllib.parse import urlencode

import pytest
import requests

from modules import cmd_args
from tests.app_process import free_port
from tests.inprocess_app import running_app

USER, PASSWORD = "alice", "Corr3ct-Horse-guess"
VICTIM, VICTIM_PASSWORD = "carol", "Carol-s3cret-guess"
API_USER, API_PASSWORD = "bot", "Batt3ry-Staple-guess"
TIMEOUT = 30
ATTEMPTS = 15
ONE_USERNAME = "exactly one username"


def forwarded(i: int) -> dict:
    """A different claimed client address on every try, in each header a proxy might set."""
    return [{"X-Forwarded-For": f"10.0.0.{i}"}, {"Forwarded": f"for=10.0.1.{i}"}, {"X-Real-IP": f"10.0.2.{i}"},
            {"X-Forwarded-For": f"10.0.3.{i}, 127.0.0.1"}][i % 4]


def loopback_alias_works() -> bool:
    """Whether this machine can connect from 127.0.0.2 (Linux routes all of 127/8 to loopback)."""
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


def post_from(address: str, url: str, path: str, body: bytes, headers: dict) -> tuple[int, dict]:
    """A request from another local address (as from another machine)."""
    host, port = url.rsplit("/", 1)[-1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT, source_address=(address, 0))
    try:
        connection.request("POST" if body is not None else "GET", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("guessing")
    models = root / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    shutil.copytree(models_dir / "Stable-diffusion" / "tiny-sd15", models / "Stable-diffusion" / "tiny-sd15")
    flags = ["--api", "--gradio-auth", f"{USER}:{PASSWORD},{VICTIM}:{VICTIM_PASSWORD}",
             "--api-auth", f"{API_USER}:{API_PASSWORD}", "--models-dir", str(models), "--outdir", str(root / "out"),
             "--skip-load-model-at-start", "--offline"]
    with running_app(*flags, env={"ZOO_SETTINGS_FILE": str(root / "config.json")}) as live:
        yield live


def decoys(password: str) -> list[dict]:
    """Login requests that name two users, so a throttle could count one while Gradio checks the other."""
    return [
        {"data": [("username", "decoy"), ("username", VICTIM), ("password", password)]},
        {"data": [("username", VICTIM), ("username", "decoy"), ("password", password)]},
        {"files": [("username", (None, "decoy")), ("username", (None, VICTIM)), ("password", (None, password))]},
        {"params": {"username": "decoy"}, "data": {"username": VICTIM, "password": password}},
        {"params": {"username": VICTIM}, "data": {"username": "decoy", "password": password}},
        {"data": {"password": password}},
    ]


def test_guesses_with_decoys_and_forwarded_headers_are_throttled_after_10(app):
    statuses = []
    for i in range(ATTEMPTS):
        for decoy in decoys(VICTIM_PASSWORD):  # even with the right password: never checked
            refused = requests.post(f"{app.url}/login", headers=forwarded(i), timeout=TIMEOUT, **decoy)
            assert refused.status_code == 400, decoy
            assert ONE_USERNAME in refused.json()["detail"] or "not in the URL" in refused.json()["detail"]
            assert "set-cookie" not in refused.headers
        guess = {"username": VICTIM, "password": f"guess-{i}"}
        if i % 2:  # multipart, as a browser's FormData sends it
            answer = requests.post(f"{app.url}/login", files={k: (None, v) for k, v in guess.items()},
                                   headers=forwarded(i), timeout=TIMEOUT)
        else:
            answer = requests.post(f"{app.url}/login", data=guess, headers=forwarded(i), timeout=TIMEOUT)
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) > 0
    assert statuses == [400] * 10 + [429] * (ATTEMPTS - 10)
    right = requests.post(f"{app.url}/login", data={"username": VICTIM, "password": VICTIM_PASSWORD},
                          headers=forwarded(99), timeout=TIMEOUT)
    assert right.status_code == 429, "a new forwarded address gave a fresh throttle"
    # Someone else is not locked out by it.
    other = requests.post(f"{app.url}/login", data={"username": USER, "password": PASSWORD}, timeout=TIMEOUT)
    assert other.status_code == 200


@pytest.mark.skipif(not loopback_alias_works(), reason="no second loopback address on this machine")
def test_the_user_can_still_log_in_from_another_address(app):
    # Lock carol out from 127.0.0.1 (the previous test may already have).
    for i in range(10):
        requests.post(f"{app.url}/login", data={"username": VICTIM, "password": f"x{i}"}, timeout=TIMEOUT)
    body = urlencode({"username": VICTIM, "password": VICTIM_PASSWORD}).encode()
    status, _ = post_from("127.0.0.2", app.url, "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200


@pytest.mark.skipif(not loopback_alias_works(), reason="no second loopback address on this machine")
def test_basic_guesses_are_throttled_and_do_not_lock_the_user_out_elsewhere(app):
    url = f"{app.url}/sdapi/v1/samplers"
    statuses = [requests.get(url, auth=(API_USER, f"guess-{i}"), headers=forwarded(i), timeout=TIMEOUT).status_code
                for i in range(ATTEMPTS)]
    assert statuses == [401] * 10 + [429] * (ATTEMPTS - 10)
    assert requests.get(url, auth=(API_USER, API_PASSWORD), headers=forwarded(99), timeout=TIMEOUT).status_code == 429
    basic = "Basic " + base64.b64encode(f"{API_USER}:{API_PASSWORD}".encode()).decode()
    status, _ = post_from("127.0.0.2", app.url, "/sdapi/v1/samplers", None, {"Authorization": basic})
    assert status == 200


def test_the_ui_server_believes_no_forwarded_header(app):
    config = app.demo.server.config
    assert config.proxy_headers is False and config.forwarded_allow_ips == []


def test_a_login_form_over_64_kb_is_refused(app):
    answer = requests.post(f"{app.url}/login", data={"username": VICTIM, "password": "x" * 70_000}, timeout=TIMEOUT)
    assert answer.status_code == 413


# Behind a proxy named with --forwarded-allow-ips ------------------------------------------------------

def test_a_named_proxys_forwarded_address_is_believed(backend, tmp_path):
    """The API alone (its own uvicorn), behind a proxy on 127.0.0.1: each forwarded client has its own
    throttle, and other clients' guesses lock nobody out."""
    from modules.api.server import ApiServer, create_api_app
    from modules.security.proxy_headers import uvicorn_proxy_settings

    args = cmd_args.parse_args(["--nowebui", "--api-auth", f"{API_USER}:{API_PASSWORD}",
                                "--forwarded-allow-ips", "127.0.0.1"])
    app, _ = create_api_app(backend, args, tmp_path / "config.json")
    server = ApiServer(app, "127.0.0.1", free_port(), proxy_settings=uvicorn_proxy_settings(args)).start()
    try:
        url = f"{server.url}/sdapi/v1/samplers"
        guesser = {"X-Forwarded-For": "203.0.113.7"}
        statuses = [requests.get(url, auth=(API_USER, f"g{i}"), headers=guesser, timeout=TIMEOUT).status_code
                    for i in range(11)]
        assert statuses == [401] * 10 + [429]
        real = requests.get(url, auth=(API_USER, API_PASSWORD), headers={"X-Forwarded-For": "198.51.100.2"},
                            timeout=TIMEOUT)
        assert real.status_code == 200 and json.loads(real.text)
    finally:
        server.stop()


def test_forwarded_allow_ips_flag_is_checked():
    from modules.security.proxy_headers import uvicorn_proxy_settings

    assert uvicorn_proxy_settings(cmd_args.parse_args([])) == {"proxy_headers": False, "forwarded_allow_ips": []}
    assert uvicorn_proxy_settings(cmd_args.parse_args(["--forwarded-allow-ips", "10.0.0.1, 10.1.0.0/16"])) == {
        "proxy_headers": True, "forwarded_allow_ips": ["10.0.0.1", "10.1.0.0/16"]}
    for bad in ("*", "proxy.example.org", "10.0.0.1/99"):
        with pytest.raises(SystemExit):
            cmd_args.parse_args(["--forwarded-allow-ips", bad])
