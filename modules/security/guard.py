"""The gate in front of every route: Host names, cross-site requests, logins, the login page's allowlist,
CORS, paths and body size.

Gradio checks its login on most routes but not on all of them (heartbeat, startup-events, the run
history page, ...), and a route added later (an extension, a new Gradio version) would be open until
someone noticed. So this ASGI middleware wraps the whole app and denies by default: with --gradio-auth,
a request needs a login on every path except what the login page itself loads (PUBLIC_PATHS,
PUBLIC_PREFIXES); serving the API alone (--nowebui) with --api-auth, every path needs the API login, routes
added by extensions included. Beyond logins it
- answers 400 to a Host the server does not serve under and 403 to a cross-site request that changes
  something (modules/security/hosts.py: DNS rebinding, CSRF, login CSRF),
- makes session cookies SameSite=Lax (Gradio sets SameSite=None), and ends only the caller's session on logout,
- grants no CORS to other sites (Gradio grants any Origin when the Host is not localhost, e.g. --listen),
- answers 403 to any path with a `..` segment, as it answers a file outside the allowed folders, so a
  traversal attempt learns nothing (not even whether the file exists),
- refuses request bodies over --max-upload-mb with 413,
- throttles password guessing, on the login form and with HTTP Basic logins alike (login_throttle: 429
  after 10 failures for one user name from one address in 5 minutes); a login form must name exactly one
  user (login_form), and the address is the connection's own unless --forwarded-allow-ips names the proxy,
- and keeps the API's endpoint list (with the checkpoint names) out of the anonymous login page.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request, cookie_parser

from modules.compat import login_cookie_names, login_tokens, logged_in_user, replace_api_info, wrap_outermost
from modules.security.hosts import HostPolicy, changes_state
from modules.security.login_form import BadLoginForm, read_login_form
from modules.security.login_throttle import LoginThrottle
from modules.security.request_body import read_body, replay

# What the login page loads before anyone has logged in. Nothing here runs a job or shows a file of ours.
PUBLIC_PATHS = frozenset({
    "/",  # the login page itself (for an anonymous visitor Gradio serves the login form, not the app)
    "/login", "/login/",  # where the form posts the user name and password
    "/logout",  # only drops the session cookie
    "/favicon.ico", "/theme.css", "/manifest.json", "/robots.txt", "/pwa_icon",
})
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon/")  # Gradio's own packaged front end
# The API's paths: protected by the API logins (HTTP Basic) even when the UI has none.
API_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
API_PREFIXES = ("/sdapi/", "/zoo/v1/")
EMPTY_API_INFO = b'{"named_endpoints":{},"unnamed_endpoints":{}}'
_CORS_HEADERS = (b"access-control-allow-origin", b"access-control-allow-credentials")
_SAMESITE_NONE = re.compile(rb";\s*samesite=none", re.IGNORECASE)


@dataclass
class GuardConfig:
    ui_logins: bool = False  # --gradio-auth: every path but the public ones needs a login
    api_only: bool = False  # --nowebui: no login page; with API logins, every path needs one
    hosts: HostPolicy = field(default_factory=HostPolicy)  # the Host names served, --allowed-hosts
    api_logins: object | None = None  # a modules.api.auth.Logins (HTTP Basic), accepted on every path
    max_body_bytes: int | None = None  # --max-upload-mb
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)
    # While Gradio's launch() runs, it calls its own startup-events route from this machine, without a
    # login, and fails if refused; that one call is let through then, and never after.
    launching: bool = False

    @property
    def api_login_required(self) -> bool:
        return bool(self.api_logins is not None and self.api_logins.required)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def is_api(path: str) -> bool:
    return path in API_PATHS or path.startswith(API_PREFIXES)


def has_dot_dot(path: str) -> bool:
    return ".." in re.split(r"[/\\]", path) or "\x00" in path


class Guard:
    """ASGI middleware. `session_app` is the Gradio app whose login cookies count (None: API only)."""

    def __init__(self, app, config: GuardConfig, session_app=None):
        self.app = app
        self.config = config
        self.session_app = session_app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        headers = Headers(scope=scope)
        if not self.config.hosts.allows_host(headers.get("host")):
            host = (headers.get("host") or "")[:100]
            await self._answer(scope, send, 400, f"this server does not answer under the host name {host!r}; "
                                                 "a reverse proxy or tunnel's name can be added with --allowed-hosts")
            return
        if changes_state(scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET", path):
            source = headers.get("origin") or headers.get("referer")
            if source is not None and not self.config.hosts.same_site(source, headers.get("host", "")):
                await self._answer(scope, send, 403, "a request from another site (Origin or Referer) may not "
                                                     "change anything here")
                return
        if has_dot_dot(path):
            await self._answer(scope, send, 403, "Forbidden")
            return
        address = (scope.get("client") or ("unknown",))[0]
        basic = self._basic_login(scope)
        if basic is not None:
            wait = self.config.login_throttle.retry_after(address, basic)
            if wait > 0:
                await self._too_many(scope, send, wait)
                return
        logged_in = self._logged_in(scope, address, basic) or self._launch_check(address, path)
        if not logged_in and self._needs_login(path):
            await self._answer(scope, send, 401, "Not authenticated: log in first",
                               {"WWW-Authenticate": "Basic"} if is_api(path) or self.config.api_only else None)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        send = _same_site_lax(send)
        if self.session_app is not None and path.rstrip("/") == "/logout":
            scope = self._log_out_this_session(scope, headers)
        if self.config.max_body_bytes is not None:
            receive = await self._limited_body(scope, receive, send, headers)
            if receive is None:
                return
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, headers.get("host", "")):
            send = _without_cors_grant(send)
        if (self.config.ui_logins and not logged_in and path == "/" and scope["method"] == "GET"):
            scope, send = _plain_encoding(scope), _login_page_without_api_info(send)
        if self.config.ui_logins and scope["method"] == "POST" and path.rstrip("/") == "/login":
            try:
                user, receive = await read_login_form(scope, receive)
            except BadLoginForm as e:
                await self._answer(scope, send, e.status, str(e))
                return
            wait = self.config.login_throttle.retry_after(address, user)
            if wait > 0:
                await self._too_many(scope, send, wait)
                return
            send = _count_login(send, self.config.login_throttle, address, user)
        await self.app(scope, receive, send)

    def _launch_check(self, address: str, path: str) -> bool:
        return (self.config.launching and path == "/gradio_api/startup-events"
                and address in ("127.0.0.1", "::1", "localhost"))

    def _needs_login(self, path: str) -> bool:
        if self.config.ui_logins:
            return not is_public(path)
        if self.config.api_only:  # no login page to load: every route is the API's, an extension's too
            return self.config.api_login_required
        return self.config.api_login_required and is_api(path)

    def _log_out_this_session(self, scope, headers: Headers):
        """Gradio's /logout ends every session of the user (all_session=True by default), so logging out
        on one device would log out the others. Only the caller's own token is dropped here, and Gradio is
        told to drop no more."""
        cookies = cookie_parser(headers.get("cookie", ""))
        tokens = login_tokens(self.session_app)
        for name in login_cookie_names(self.session_app):
            tokens.pop(cookies.get(name), None)
        return {**scope, "query_string": b"all_session=false"}

    def _logged_in(self, scope, address: str, basic: str | None) -> bool:
        if self.config.ui_logins and self.session_app is not None:
            cookies = cookie_parser(Headers(scope=scope).get("cookie", ""))
            if logged_in_user(self.session_app, cookies) is not None:
                return True
        if self.config.api_login_required:
            user = self.config.api_logins.logged_in_user(Request(scope))
            if basic is not None:  # a Basic login was tried: right or wrong, the throttle hears of it
                (self.config.login_throttle.failed if user is None else self.config.login_throttle.succeeded)(
                    address, basic)
            return user is not None
        return False

    def _basic_login(self, scope) -> str | None:
        """The user name of an HTTP Basic login the request carries, when the API's logins apply to it."""
        if scope["type"] != "http" or not self.config.api_login_required:
            return None
        from modules.api.auth import read_basic

        given = read_basic(Request(scope))
        return None if given is None else given.username

    async def _too_many(self, scope, send, wait: float) -> None:
        seconds = math.ceil(wait)
        await self._answer(scope, send, 429, f"too many failed logins for this user name; try again in {seconds} s",
                           {"Retry-After": str(seconds)})

    async def _limited_body(self, scope, receive, send, headers: Headers):
        """`receive` for the app, or None when a 413 was sent. A body without Content-Length (chunked)
        is read here, up to the limit, and replayed."""
        limit = self.config.max_body_bytes
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > limit:
                await self._too_large(scope, send)
                return None
            return receive
        if "chunked" not in headers.get("transfer-encoding", "").lower():
            return receive
        messages, over = await read_body(receive, limit)
        if over:
            await self._too_large(scope, send)
            return None
        return replay(messages, receive)

    async def _too_large(self, scope, send) -> None:
        megabytes = self.config.max_body_bytes / 2**20
        await self._answer(scope, send, 413, f"the request body is over the {megabytes:g} MB limit "
                                             "(--max-upload-mb)")

    @staticmethod
    async def _answer(scope, send, status: int, detail: str, headers: dict | None = None) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        reason = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 413: "Payload Too Large",
                  429: "Too Many Requests"}[status]
        body = json.dumps({"error": reason, "detail": detail}).encode()
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


def _count_login(send, throttle: LoginThrottle, address: str, user: str):
    """Gradio answers a wrong password with 400 and a right one with a redirect or 200."""
    async def wrapped(message):
        if message["type"] == "http.response.start":
            if message["status"] == 400:
                throttle.failed(address, user)
            elif message["status"] < 400:
                throttle.succeeded(address, user)
        await send(message)
    return wrapped


def same_origin(origin: str, host: str) -> bool:
    """True when `origin` is this server as the browser reached it (Host header); a page of another site,
    another port, or an opaque "null" origin is not."""
    netloc = urlsplit(origin).netloc.lower()
    return bool(netloc) and netloc == host.lower()


def _same_site_lax(send):
    """Gradio sets its session cookie SameSite=None (for embedding in other sites' frames), so other sites'
    forms and fetches would carry it; Lax keeps it to this site's pages and to links followed to it."""
    async def wrapped(message):
        if message["type"] == "http.response.start" and any(k.lower() == b"set-cookie"
                                                             for k, _ in message.get("headers", [])):
            message = {**message, "headers": [
                (k, _SAMESITE_NONE.sub(b"; SameSite=lax", v) if k.lower() == b"set-cookie" else v)
                for k, v in message.get("headers", [])]}
        await send(message)
    return wrapped


def _without_cors_grant(send):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [(k, v) for k, v in message.get("headers", [])
                                               if k.lower() not in _CORS_HEADERS]}
        await send(message)
    return wrapped


def _plain_encoding(scope):
    """The scope without Accept-Encoding, so the login page comes back uncompressed and can be edited."""
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]
    return {**scope, "headers": headers}


def _login_page_without_api_info(send):
    """Gradio embeds the API description (endpoints, checkpoint names) in every page, the anonymous
    login page included; that page gets an empty one."""
    held: dict = {}

    async def wrapped(message):
        if message["type"] == "http.response.start":
            held["start"], held["body"] = message, b""
            return
        if message["type"] != "http.response.body" or "start" not in held:
            await send(message)
            return
        held["body"] += message.get("body", b"")
        if message.get("more_body", False):
            return
        body = replace_api_info(held["body"], EMPTY_API_INFO)
        start = held.pop("start")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    return wrapped


def install(app, config: GuardConfig, session_app=None) -> None:
    """Put the guard in front of `app`, outside every other middleware (so it can take back a CORS grant),
    including any added after this call (Gradio adds its CORS middleware when it launches). Works before
    and after the app has started serving."""
    wrap_outermost(app, lambda inner: Guard(inner, config, session_app))
