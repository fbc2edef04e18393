"""Host names and cross-site requests (DNS rebinding, CSRF, login CSRF), session cookies and logout.

The reproduction from the review: `webui.py --api` on loopback without logins, and a page of another site
that re-pointed its own name at 127.0.0.1 (Host and Origin `rebind.evil.example:7860`) calling the
Extensions tab's install through /gradio_api/queue/join. It must be refused before any route runs."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests

from modules import cmd_args
from modules.security.hosts import HostPolicy, HostRule, changes_state, parse_allowed_hosts, split_host
from tests.inprocess_app import running_app

USER, PASSWORD = "alice", "Corr3ct-Horse-host"
TIMEOUT = 30
EVIL = "rebind.evil.example:7860"
TUNNEL = "tunnel.example.org"
QUEUE_JOIN = {"data": ["file:///tmp/evil-extension", ""], "fn_index": 0, "session_hash": "rebind", "event_data": None,
              "trigger_id": None}


def start(models_dir, tmp_path_factory, name: str, *flags: str):
    root = tmp_path_factory.mktemp(name)
    models = root / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    shutil.copytree(models_dir / "Stable-diffusion" / "tiny-sd15", models / "Stable-diffusion" / "tiny-sd15")
    return running_app(*flags, "--models-dir", str(models), "--outdir", str(root / "outputs"),
                       "--skip-load-model-at-start", "--offline", env={"ZOO_SETTINGS_FILE": str(root / "config.json")})


@pytest.fixture(scope="module")
def open_app(models_dir, tmp_path_factory):
    """As in the review: --api on loopback, no logins."""
    with start(models_dir, tmp_path_factory, "open", "--api") as live:
        yield live


@pytest.fixture(scope="module")
def login_app(models_dir, tmp_path_factory):
    """With logins, and a tunnel's name added with --allowed-hosts."""
    with start(models_dir, tmp_path_factory, "login", "--api", "--gradio-auth", f"{USER}:{PASSWORD}",
               "--allowed-hosts", TUNNEL) as live:
        yield live


def port(app) -> int:
    return int(app.url.rsplit(":", 1)[1])


def uploads() -> set[Path]:
    """Every file in the running app's Gradio folder (it sets GRADIO_TEMP_DIR while it runs)."""
    folder = Path(os.environ["GRADIO_TEMP_DIR"])
    return set(folder.rglob("*")) if folder.exists() else set()


# The reproduction --------------------------------------------------------------------------------

def test_a_rebinding_page_is_refused_before_any_route_runs(open_app):
    headers = {"Host": EVIL, "Origin": f"http://{EVIL}"}
    answer = requests.post(f"{open_app.url}/gradio_api/queue/join", json=QUEUE_JOIN, headers=headers, timeout=TIMEOUT)
    assert answer.status_code == 400, answer.text
    assert "rebind.evil.example" in answer.json()["detail"] and "--allowed-hosts" in answer.json()["detail"]
    for path in ("/", "/config", "/gradio_api/info", "/sdapi/v1/samplers", "/docs", "/example-tab/saved"):
        assert requests.get(open_app.url + path, headers={"Host": EVIL}, timeout=TIMEOUT).status_code == 400, path
    for host in ("evil.example", "127.0.0.1.evil.example", "localhost.evil.example:7860", "", "local host"):
        assert requests.get(open_app.url + "/config", headers={"Host": host}, timeout=TIMEOUT).status_code == 400


def test_the_names_the_server_is_reached_by_still_work(open_app):
    here = port(open_app)
    # loopback with its port, through an SSH tunnel on another local port, and IPv6 loopback
    for host in (f"127.0.0.1:{here}", f"localhost:{here}", "localhost:8080", f"[::1]:{here}", f"LOCALHOST.:{here}"):
        assert requests.get(open_app.url + "/config", headers={"Host": host}, timeout=TIMEOUT).status_code == 200, host
    assert requests.get(open_app.url + "/sdapi/v1/samplers", timeout=TIMEOUT).status_code == 200


# Cross-site requests -----------------------------------------------------------------------------

@pytest.mark.parametrize("source", [{"Origin": "https://evil.example"}, {"Origin": "null"},
                                    {"Origin": "http://localhost:1"},  # another local app's page
                                    {"Referer": "https://evil.example/page.html"}])
def test_a_cross_site_upload_or_queue_join_is_refused(open_app, source):
    before = uploads()
    answer = requests.post(f"{open_app.url}/gradio_api/upload", files={"files": ("x.txt", b"cross-site")},
                           headers=source, timeout=TIMEOUT)
    assert answer.status_code == 403 and "another site" in answer.json()["detail"]
    assert uploads() == before, "the cross-site upload was stored"
    joined = requests.post(f"{open_app.url}/gradio_api/queue/join", json=QUEUE_JOIN, headers=source, timeout=TIMEOUT)
    assert joined.status_code == 403
    txt2img = requests.post(f"{open_app.url}/sdapi/v1/txt2img", json={"prompt": "x"}, headers=source, timeout=TIMEOUT)
    assert txt2img.status_code == 403


def test_the_apps_own_pages_and_non_browser_clients_may_post(open_app):
    own = f"http://127.0.0.1:{port(open_app)}"
    for headers in ({"Origin": own}, {"Referer": own + "/?__theme=dark"}, {}):  # {}: a script, curl
        answer = requests.post(f"{open_app.url}/gradio_api/upload", files={"files": ("x.txt", b"mine")},
                               headers=headers, timeout=TIMEOUT)
        assert answer.status_code == 200, (headers, answer.text)
    # Reading (GET) from another site's page is not refused here: it gets no CORS grant, so it cannot read.
    assert requests.get(f"{open_app.url}/config", headers={"Origin": "https://evil.example"},
                        timeout=TIMEOUT).status_code == 200


def test_login_csrf_is_refused(login_app):
    answer = requests.post(f"{login_app.url}/login", data={"username": USER, "password": PASSWORD},
                           headers={"Origin": "https://evil.example"}, timeout=TIMEOUT)
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_a_tunnel_name_given_with_allowed_hosts_is_served(login_app):
    session = login(login_app)
    cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in session.cookies.items())}
    for host in (TUNNEL, f"{TUNNEL}:443"):
        assert requests.get(login_app.url + "/config", headers={"Host": host, **cookie},
                            timeout=TIMEOUT).status_code == 200
    assert requests.get(login_app.url + "/config", headers={"Host": "other.example.org", **cookie},
                        timeout=TIMEOUT).status_code == 400
    # A proxy that sets Host to the local address: the page's origin is the tunnel's name, which is allowed.
    answer = requests.post(f"{login_app.url}/gradio_api/upload", files={"files": ("x.txt", b"via tunnel")},
                           headers={"Origin": f"https://{TUNNEL}", **cookie}, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text


# Cookies and logout ------------------------------------------------------------------------------

def login(app) -> requests.Session:
    session = requests.Session()
    answer = session.post(f"{app.url}/login", data={"username": USER, "password": PASSWORD}, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    session.set_cookies = answer.raw.headers.getlist("set-cookie")
    return session


def test_session_cookies_are_same_site_lax(login_app):
    cookies = login(login_app).set_cookies  # Gradio's two access tokens, and our anonymous-session cookie
    assert sum("access-token" in c for c in cookies) == 2
    for cookie in cookies:
        assert "samesite=lax" in cookie.lower() and "samesite=none" not in cookie.lower(), cookie
        assert "httponly" in cookie.lower()


def test_logout_ends_only_that_session(login_app):
    laptop, phone = login(login_app), login(login_app)
    for session in (laptop, phone):
        assert session.get(f"{login_app.url}/config", timeout=TIMEOUT).status_code == 200
    out = phone.get(f"{login_app.url}/logout", params={"all_session": "true"}, allow_redirects=False, timeout=TIMEOUT)
    assert out.status_code == 302
    phone_cookies = {k: v for k, v in out.request.headers.items() if k == "Cookie"}
    assert requests.get(f"{login_app.url}/config", headers=phone_cookies, timeout=TIMEOUT).status_code == 401
    assert laptop.get(f"{login_app.url}/config", timeout=TIMEOUT).status_code == 200, "logout ended another session"


# The rules on their own --------------------------------------------------------------------------

def test_host_rules():
    rules = parse_allowed_hosts("gpu.example.org,*.trycloudflare.com,p.example:8443")
    local = HostPolicy(bound="127.0.0.1", rules=rules)
    for host in ("127.0.0.1:7860", "localhost", "localhost:9", "[::1]:7860", "127.0.0.2:7860", "gpu.example.org",
                 "GPU.example.org:443", "abc.trycloudflare.com", "p.example:8443"):
        assert local.allows_host(host), host
    for host in (None, "", "rebind.evil.example:7860", "trycloudflare.com", "evil.com.trycloudflare.com.evil",
                 "gpu.example.org.evil.example", "p.example:8444", "10.0.0.5:7860", "localhost:http", "[::1"):
        assert not local.allows_host(host), host
    listening = HostPolicy(bound="0.0.0.0")
    assert listening.allows_host("192.168.1.20:7860") and listening.allows_host("[fe80::1]:7860")
    assert not listening.allows_host("rebind.evil.example:7860")
    bound = HostPolicy(bound="10.0.0.5")
    assert bound.allows_host("10.0.0.5:7860") and not bound.allows_host("10.0.0.6:7860")
    shared = HostPolicy(share_host="abcd.gradio.live")
    assert shared.allows_host("abcd.gradio.live") and not shared.allows_host("efgh.gradio.live")
    assert split_host("[::1]:7860") == ("::1", 7860) and split_host("Name.:80") == ("name", 80)


def test_same_site_rules():
    policy = HostPolicy(rules=(HostRule("tunnel.example.org"),))
    assert policy.same_site("http://localhost:7860", "localhost:7860")
    assert policy.same_site("https://gpu.example.org", "gpu.example.org")
    assert policy.same_site("https://tunnel.example.org", "127.0.0.1:7860")  # a proxy rewrote Host
    for source in ("https://evil.example", "null", "http://localhost:7861", "file:///x.html", "http://u@localhost:7860",
                   "http://localhost:7860.evil.example"):
        assert not policy.same_site(source, "localhost:7860"), source
    assert changes_state("POST", "/x") and changes_state("GET", "/logout") and not changes_state("GET", "/config")


def test_allowed_hosts_flag_is_checked():
    with pytest.raises(SystemExit):
        cmd_args.parse_args(["--allowed-hosts", "https://gpu.example.org/"])
    with pytest.raises(SystemExit):
        cmd_args.parse_args(["--allowed-hosts", "*"])
    assert cmd_args.allowed_hosts(cmd_args.parse_args(["--allowed-hosts", "a.example, b.example:8443"])) == (
        HostRule("a.example"), HostRule("b.example", 8443))


def test_share_link_host_is_served(monkeypatch):
    """The share link's host is known once Gradio made the link; launch_ui adds it to the guard's names."""
    from modules import server

    class Demo:
        share_url = "https://abcd1234.gradio.live"

        def queue(self, **_):
            pass

    captured = {}

    def launch(demo, app, *args):  # Gradio's launch, without a server or a tunnel
        captured["app"] = app
        return app, "http://127.0.0.1:7860/", demo.share_url

    monkeypatch.setattr(server, "share_reachable", lambda: (True, ""))
    monkeypatch.setattr(server, "launch", launch)
    server.launch_ui(Demo(), cmd_args.parse_args(["--share", "--gradio-auth", "u:p"]), block=False)
    guard = captured["app"].build_middleware_stack()
    assert guard.config.hosts.allows_host("abcd1234.gradio.live")
    assert not guard.config.hosts.allows_host("other.gradio.live")


def test_a_websocket_from_another_site_or_host_is_closed():
    """Websocket handshakes are not covered by CORS: the guard checks their Host and Origin itself."""
    import asyncio
    import threading

    from modules.security import guard

    async def app(scope, receive, send):
        await send({"type": "websocket.accept"})

    def handshake(headers: list[tuple[bytes, bytes]]) -> list[dict]:
        sent = []

        async def send(message):
            sent.append(message)
        call = guard.Guard(app, guard.GuardConfig())({"type": "websocket", "path": "/ws", "headers": headers},
                                                     None, send)
        worker = threading.Thread(target=asyncio.run, args=(call,))  # Playwright may hold this thread's loop
        worker.start()
        worker.join(30)
        return sent

    closed, accepted = [{"type": "websocket.close", "code": 1008}], [{"type": "websocket.accept"}]
    host = (b"host", b"127.0.0.1:7860")
    assert handshake([host, (b"origin", b"https://evil.example")]) == closed
    assert handshake([(b"host", EVIL.encode()), (b"origin", f"http://{EVIL}".encode())]) == closed
    assert handshake([host, (b"origin", b"http://127.0.0.1:7860")]) == accepted
    assert handshake([host]) == accepted
