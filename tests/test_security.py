"""A live app with --gradio-auth, as it runs on a remote GPU: every route of its live route table needs the
login (but what the login page loads), no answer holds a password, no path outside the app's folders is
readable, other sites get no CORS grant, uploads over --max-upload-mb get 413, and a bad model file asked
for by name gives a clear error naming it while the server keeps serving."""
from __future__ import annotations

import base64
import http.client
import io
import json
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import requests
from PIL import Image

from modules import paths, server
from modules.security import guard
from tests.inprocess_app import concrete, endpoint_data, live_routes, make_app, running_app
from tests.test_registry import write_broken_files

USER, PASSWORD = "alice", "Corr3ct-Horse-ui"
API_USER, API_PASSWORD = "bot", "Batt3ry-Staple-api"
SMALL = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 2, "sampler_name": "Euler a", "seed": 3,
         "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}
TIMEOUT = 30
SESSIONS = 8  # Gradio sessions kept (modules.server.SESSION_CAPACITY), small here so a test can fill it
# What the login page may load without a login: each path of the live app that answers without one must
# be listed here (and in modules/security/guard.py), so a new open route cannot slip in unnoticed.
LOGIN_PAGE_ROUTES = {"/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/manifest.json",
                     "/robots.txt", "/pwa_icon", "/pwa_icon/{size}", "/assets/{path:path}", "/static/{path:path}",
                     "/svelte/{path:path}"}


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("secure")
    models = root / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    shutil.copytree(models_dir / "Stable-diffusion" / "tiny-sd15", models / "Stable-diffusion" / "tiny-sd15")
    marker = root / "pickle-payload-ran"
    write_broken_files(models / "Stable-diffusion", marker)
    outdir, secret = root / "outputs", root / "secret"
    (outdir / "txt2img").mkdir(parents=True)
    secret.mkdir()
    (secret / "passwords.txt").write_text("TOP-SECRET")
    Image.new("RGB", (8, 8), "red").save(outdir / "txt2img" / "mine.png")
    (outdir / "link.txt").symlink_to(secret / "passwords.txt")
    (outdir / "linkdir").symlink_to(secret, target_is_directory=True)
    flags = ["--api", "--gradio-auth", f"{USER}:{PASSWORD}", "--api-auth", f"{API_USER}:{API_PASSWORD}",
             "--max-upload-mb", "1", "--models-dir", str(models), "--outdir", str(outdir),
             "--skip-load-model-at-start", "--offline", "--allowed-hosts", "gpu.example.org"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(server, "SESSION_CAPACITY", SESSIONS)
        with running_app(*flags, env={"ZOO_SETTINGS_FILE": str(root / "config.json")}) as live:
            live.outdir, live.secret, live.marker, live.models = outdir, secret, marker, models
            yield live


@pytest.fixture(scope="module")
def session(app):
    """A browser-like session logged in through the login form."""
    s = requests.Session()
    response = s.post(f"{app.url}/login", data={"username": USER, "password": PASSWORD}, timeout=TIMEOUT)
    assert response.status_code == 200 and response.json() == {"success": True}
    return s


def request(method: str, url: str, session=None, read_timeout: float = TIMEOUT, **kwargs) -> requests.Response:
    """One request that reads at most the start of an answer (some routes stream forever). With a short
    `read_timeout`, an answer that is slow to start (an event stream with nothing to tell) counts as empty."""
    try:
        with (session or requests).request(method, url, stream=True, timeout=(TIMEOUT, read_timeout),
                                           allow_redirects=False, **kwargs) as response:
            response.body = next(response.iter_content(65536), b"")
            return response
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):  # a read that timed out
        if read_timeout == TIMEOUT:
            raise
        response = requests.Response()
        response.status_code, response.body = 0, b""
        return response


# Exposure ---------------------------------------------------------------------------------------

def test_every_live_route_needs_a_login_except_what_the_login_page_loads(app):
    routes = live_routes(app.app)
    paths = {path for _kind, _method, path in routes}
    assert {"/sdapi/v1/txt2img", "/gradio_api/heartbeat/{session_hash}", "/gradio_api/upload", "/monitoring",
            "/gradio_api/file={path_or_url:path}", "/gradio_api/queue/join", "/config", "/docs"} <= paths
    assert len(routes) > 80
    open_routes = set()
    for kind, method, path in routes:
        assert kind == "http", f"a websocket route {path}: test that it needs the login too"
        url = app.url + concrete(path)
        for cookie in (None, "not-a-session"):
            cookies = {f"access-token-unsecure-{app.app.cookie_id}": cookie} if cookie else None
            response = request("GET" if method == "*" else method, url, cookies=cookies)
            if response.status_code != 401:
                open_routes.add(path)
        # A password that is not a login of this app opens nothing either (after 10 tries, the
        # throttle answers 429 instead of 401). Not the real user's name: that would lock them out.
        assert request(method if method != "*" else "GET", url, auth=("mallory", "wrong")).status_code in (401, 429) \
            or path in LOGIN_PAGE_ROUTES
    assert open_routes <= LOGIN_PAGE_ROUTES, f"open without a login: {sorted(open_routes - LOGIN_PAGE_ROUTES)}"
    assert {"/", "/theme.css", "/assets/{path:path}", "/login"} <= open_routes


def test_the_login_page_loads_and_tells_nothing_about_the_app(app, session):
    anonymous = requests.get(app.url + "/", timeout=TIMEOUT)
    assert anonymous.status_code == 200 and "auth_required" in anonymous.text
    assert "txt2img" not in anonymous.text and "tiny-sd15" not in anonymous.text
    logged_in = session.get(app.url + "/", timeout=TIMEOUT).text
    assert "txt2img" in logged_in and "tiny-sd15" in logged_in  # the same page, after the login


def test_with_the_login_the_app_works_and_no_answer_holds_a_password(app, session):
    assert session.get(app.url + "/config", timeout=TIMEOUT).status_code == 200
    assert session.get(app.url + "/gradio_api/info", timeout=TIMEOUT).status_code == 200
    assert request("GET", app.url + "/gradio_api/heartbeat/abc", session).status_code == 200
    api = {"auth": (API_USER, API_PASSWORD)}
    assert requests.get(app.url + "/sdapi/v1/samplers", timeout=TIMEOUT, **api).status_code == 200
    assert requests.get(app.url + "/sdapi/v1/samplers", timeout=TIMEOUT, auth=(USER, PASSWORD)).status_code == 401
    answers = []
    for _kind, method, path in live_routes(app.app):
        if method == "GET" and path != "/logout":  # /logout would end the session
            answers.append(request("GET", app.url + concrete(path), session, read_timeout=2).body)
            answers.append(request("GET", app.url + concrete(path), read_timeout=2, **api).body)
    assert len(answers) > 100
    for body in answers:
        for secret in (PASSWORD, API_PASSWORD):
            assert secret.encode() not in body
    flags = requests.get(app.url + "/sdapi/v1/cmd-flags", timeout=TIMEOUT, **api).json()
    assert flags["gradio_auth"] == flags["api_auth"] == "<redacted>"


@pytest.mark.parametrize("path", ["/theme.css", "/config", "/sdapi/v1/samplers"])
def test_other_sites_get_no_cors_grant(app, session, path):
    # The login goes in by hand: requests files cookies under the Host header, which this test changes.
    login = {"auth": (API_USER, API_PASSWORD)} if path.startswith("/sdapi") else {}
    cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in session.cookies.items())}
    for host in (f"127.0.0.1:{app.url.rsplit(':', 1)[1]}", "gpu.example.org"):  # loopback, and --allowed-hosts
        for origin in ("https://evil.example", "null", "http://127.0.0.1:1", f"http://{host}.evil.example"):
            headers = {"Origin": origin, "Host": host, **cookie}
            answer = requests.get(app.url + path, headers=headers, timeout=TIMEOUT, **login)
            assert answer.status_code == 200
            assert "access-control-allow-origin" not in answer.headers, (host, origin)
            preflight = requests.options(app.url + path, timeout=TIMEOUT, **login, headers={
                **headers, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
            assert "access-control-allow-origin" not in preflight.headers, (host, origin)
    # The page's own origin is still granted (what Gradio's own front end gets).
    same = requests.get(app.url + path, headers={"Origin": "http://gpu.example.org", "Host": "gpu.example.org",
                                                 **cookie}, timeout=TIMEOUT, **login)
    assert same.status_code == 200 and same.headers.get("access-control-allow-origin") == "http://gpu.example.org"


def test_uploads_over_the_limit_get_413(app, session):
    big, small = b"\0" * (1024 * 1024 + 1), b"\0" * 1000
    upload = app.url + "/gradio_api/upload"
    response = session.post(upload, files={"files": ("big.bin", big)}, timeout=TIMEOUT)
    assert response.status_code == 413
    answer = session.post(upload, files={"files": ("small.bin", small)}, timeout=TIMEOUT)
    assert answer.status_code == 200
    assert Path(answer.json()[0]).resolve().is_relative_to((paths.CACHE_DIR / "gradio").resolve())
    api, body = {"auth": (API_USER, API_PASSWORD)}, json.dumps({"image": "A" * (1024 * 1024)}).encode()
    for headers, data in (({"Content-Type": "application/json"}, body),
                          ({"Content-Type": "application/json"}, iter([body[:1000], body[1000:]]))):  # chunked
        response = requests.post(app.url + "/sdapi/v1/png-info", data=data, headers=headers, timeout=TIMEOUT, **api)
        assert response.status_code == 413 and "--max-upload-mb" in response.json()["detail"]
    assert requests.get(app.url + "/sdapi/v1/samplers", timeout=TIMEOUT, **api).status_code == 200


def test_the_api_alone_refuses_a_body_over_the_limit(backend, tmp_path):
    from fastapi.testclient import TestClient

    with TestClient(make_app(backend, tmp_path / "config.json", "--max-upload-mb", "0.5")) as client:
        response = client.post("/sdapi/v1/png-info", json={"image": "A" * 600_000})
        assert response.status_code == 413 and response.json()["error"] == "Payload Too Large"
        assert client.post("/sdapi/v1/png-info", json={"image": "%%%"}).status_code == 422


# Paths ------------------------------------------------------------------------------------------

class Raw:
    """GETs sent as written: no client-side clean-up of `..`, `%2e` or backslashes (requests removes `..`)."""

    def __init__(self, app, session):
        self.port = int(app.url.rsplit(":", 1)[1])
        self.cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())

    def get(self, target: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            connection.putrequest("GET", target, skip_accept_encoding=True)
            connection.putheader("Cookie", self.cookie)
            connection.endheaders()
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def file(self, path) -> tuple[int, bytes]:
        return self.get(f"/gradio_api/file={path}")


def test_only_the_outputs_are_readable_through_the_file_route(app, session):
    outdir, secret, raw = app.outdir, app.secret, Raw(app, session)
    assert raw.file(outdir / "txt2img" / "mine.png")[0] == 200
    hostile = [
        secret / "passwords.txt", f"{outdir}/../secret/passwords.txt", f"{outdir}/txt2img/../../secret/passwords.txt",
        f"{outdir}/%2e%2e/secret/passwords.txt", f"{outdir}%2f..%2fsecret%2fpasswords.txt",
        f"{outdir}/%252e%252e/secret/passwords.txt", f"{outdir}/..\\secret\\passwords.txt",
        "../" * 12 + "etc/passwd", "..%2f" * 12 + "etc%2fpasswd", "%2e%2e%2f" * 12 + "etc%2fpasswd",
        outdir / "link.txt", outdir / "linkdir" / "passwords.txt",  # symlinks out of outputs/
        str(outdir / "txt2img" / "mine.png").upper(), str(outdir).replace("outputs", "OUTPUTS") + "/txt2img/mine.png",
        "/etc/passwd", "%2Fetc%2Fpasswd", "//server/share/passwords.txt", "\\\\server\\share\\passwords.txt",
        "%5C%5Cserver%5Cshare%5Cpasswords.txt", "file:///etc/passwd", "/proc/self/environ", "webui.py",
        Path("webui.py").resolve(), "config.json", Path("models").resolve() / "Latent" / "shapes-beta-vae.safetensors",
        f"{outdir}/txt2img/mine.png%00.txt", f"{secret}/passwords.txt%00{outdir}/txt2img/mine.png",
    ]
    for path in hostile:
        status, body = raw.file(path)
        assert status == 403, path
        assert b"TOP-SECRET" not in body and b"root:" not in body
    for route in ("/gradio_api/file/", "/static/", "/assets/", "/svelte/", "/gradio_api/custom_component/x/client/"):
        for path in ("../" * 8 + "etc/passwd", "%2e%2e/" * 8 + "etc/passwd", "..%2f" * 8 + "etc%2fpasswd"):
            status, body = raw.get(route + path)
            assert status in (403, 404) and b"root:" not in body, (route, path)


def test_a_missing_file_outside_answers_like_a_forbidden_one(app, session):
    raw = Raw(app, session)
    for there, missing in ((app.secret / "passwords.txt", app.secret / "no-such-file.txt"),
                           ("/etc/passwd", "/etc/no-such-file"),
                           (f"{app.outdir}/../secret/passwords.txt", f"{app.outdir}/../secret/no-such-file.txt")):
        (a, a_body), (b, b_body) = raw.file(there), raw.file(missing)
        assert a == b == 403
        assert a_body.replace(str(there).encode(), b"") == b_body.replace(str(missing).encode(), b"")


def test_files_of_other_gradio_apps_on_the_machine_are_not_served(app, session):
    """Gradio's default folder, /tmp/gradio, is shared by every Gradio app and user of the machine."""
    shared = Path(tempfile.gettempdir()) / "gradio" / f"zoo-test-{uuid.uuid4().hex}"
    shared.mkdir(parents=True)
    try:
        (shared / "someone-elses.txt").write_text("TOP-SECRET")
        status, body = Raw(app, session).file(shared / "someone-elses.txt")
        assert status == 403 and b"TOP-SECRET" not in body
    finally:
        shutil.rmtree(shared)


def gradio_call(app, session, endpoint: str, data: list) -> tuple[str, object]:
    """Call a Gradio endpoint over HTTP; (event, data) of its last message: "complete" or "error"."""
    data = endpoint_data(app.url, endpoint, data, session)
    started = session.post(f"{app.url}/gradio_api/call/{endpoint}", json={"data": data}, timeout=TIMEOUT)
    assert started.status_code == 200, started.text
    text = session.get(f"{app.url}/gradio_api/call/{endpoint}/{started.json()['event_id']}", timeout=120).text
    events = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("event: ")]
    payloads = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("data: ")]
    return events[-1], json.loads(payloads[-1])


def test_a_file_path_smuggled_into_a_ui_call_is_refused(app, session):
    for path in (app.secret / "passwords.txt", f"{app.outdir}/../secret/passwords.txt", "/etc/passwd"):
        file_data = {"path": str(path), "meta": {"_type": "gradio.FileData"}}
        event, payload = gradio_call(app, session, "png_info", [file_data])
        assert event == "error" and "TOP-SECRET" not in json.dumps(payload)


def test_calls_cannot_fill_the_memory_with_sessions(app, session):
    """Gradio keeps a copy of the UI's values (about 1 MB) per session, and every raw call is a session."""
    for _ in range(SESSIONS + 4):
        event, _outputs = gradio_call(app, session, "refresh_checkpoints", [])
        assert event == "complete"
    assert len(app.demo.state_holder.session_data) <= SESSIONS


# Item 1 through the live app: a bad model file named by a client -----------------------------------

def test_a_bad_model_file_asked_for_gives_a_clear_error_and_the_server_keeps_serving(app, session):
    api = {"auth": (API_USER, API_PASSWORD), "timeout": 120}
    for name in ("evil.ckpt", "evil-renamed.SAFETENSORS", "truncated.safetensors"):
        body = {**SMALL, "override_settings": {"sd_model_checkpoint": name}}
        response = requests.post(app.url + "/sdapi/v1/txt2img", json=body, **api)
        assert response.status_code == 422 and response.json()["detail"].startswith(
            f"override_settings.sd_model_checkpoint: {name}: "), response.text
        event, outputs = gradio_call(app, session, "txt2img",
                                     [name, "a red circle", "", "Euler a", 2, 7, 64, 64, 3, 1, 1])
        # The user's error is a toast (gr.Error) naming the file, never a server path or a class name.
        assert event == "error" and f"{name}: " in json.dumps(outputs), outputs
        assert "Traceback" not in json.dumps(outputs) and str(app.models) not in json.dumps(outputs)
    assert "refused" in requests.post(app.url + "/sdapi/v1/txt2img", json={
        **SMALL, "override_settings": {"sd_model_checkpoint": "evil.ckpt"}}, **api).json()["detail"]
    assert not app.marker.exists(), "a pickle payload ran"
    answer = requests.post(app.url + "/sdapi/v1/txt2img", json=SMALL, **api)
    assert answer.status_code == 200 and len(answer.json()["images"]) == 1
    event, outputs = gradio_call(app, session, "txt2img",
                                 ["tiny-sd15", "a red circle", "", "Euler a", 2, 7, 64, 64, 3, 1, 1])
    assert event == "complete" and len(outputs[0]) == 1


def test_password_guessing_is_throttled_per_user_name(app):
    wrong = [requests.post(f"{app.url}/login", data={"username": "guesser", "password": f"try{i}"}, timeout=TIMEOUT)
             for i in range(10)]
    assert [r.status_code for r in wrong] == [400] * 10
    refused = requests.post(f"{app.url}/login", data={"username": "guesser", "password": PASSWORD}, timeout=TIMEOUT)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    real = requests.post(f"{app.url}/login", data={"username": USER, "password": PASSWORD}, timeout=TIMEOUT)
    assert real.status_code == 200, "someone else's guessing locked the real user out"


def test_api_password_guessing_is_throttled_too(app):
    url = f"{app.url}/sdapi/v1/sd-models"
    wrong = [requests.get(url, auth=("robot", f"guess{i}"), timeout=TIMEOUT).status_code for i in range(10)]
    assert wrong == [401] * 10
    refused = requests.get(url, auth=("robot", "guess10"), timeout=TIMEOUT)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert requests.get(url, auth=(API_USER, API_PASSWORD), timeout=TIMEOUT).status_code == 200


def test_login_throttle_window_and_reset():
    from modules.security.login_throttle import LoginThrottle

    now = [0.0]
    throttle = LoginThrottle(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("1.2.3.4", "ann") == 0
        throttle.failed("1.2.3.4", "ann")
        now[0] += 10
    assert throttle.retry_after("1.2.3.4", "ann") == 30  # the first failure ages out at t = 60
    assert throttle.retry_after("5.6.7.8", "ann") == 0 and throttle.retry_after("1.2.3.4", "bob") == 0
    now[0] = 61
    assert throttle.retry_after("1.2.3.4", "ann") == 0
    throttle.failed("1.2.3.4", "ann")
    throttle.succeeded("1.2.3.4", "ann")
    throttle.failed("1.2.3.4", "ann")
    assert throttle.retry_after("1.2.3.4", "ann") == 0  # the success cleared the earlier ones


# The guard on its own -----------------------------------------------------------------------------

def test_the_guard_closes_a_websocket_without_a_login():
    import asyncio
    import threading

    async def app(scope, receive, send):  # would accept anything
        await send({"type": "websocket.accept"})

    sent = []

    async def send(message):
        sent.append(message)

    config = guard.GuardConfig(ui_logins=True)
    scope = {"type": "websocket", "path": "/ws", "headers": [(b"host", b"127.0.0.1:7860")]}
    call = guard.Guard(app, config)(scope, None, send)
    # In a thread of its own: the browser tests' Playwright keeps an event loop on the main thread.
    worker = threading.Thread(target=asyncio.run, args=(call,))
    worker.start()
    worker.join(30)
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_origins():
    assert guard.same_origin("http://gpu.example.org:7860", "gpu.example.org:7860")
    assert guard.same_origin("https://GPU.example.org", "gpu.example.org")
    for origin in ("https://evil.example", "null", "http://gpu.example.org:7861",
                   "http://gpu.example.org.evil.example"):
        assert not guard.same_origin(origin, "gpu.example.org:7860")
    assert guard.has_dot_dot("/gradio_api/file=/a/../b") and guard.has_dot_dot("/x/..\\y")
    assert not guard.has_dot_dot("/gradio_api/file=/a/b..c/d.png")


def test_png_info_still_reads_a_small_upload(app):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    response = requests.post(app.url + "/sdapi/v1/png-info", json={"image": image}, auth=(API_USER, API_PASSWORD),
                             timeout=TIMEOUT)
    assert response.status_code == 200
