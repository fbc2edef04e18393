"""A session id for each anonymous browser, issued by the server, so jobs are never owned by a value the
client chose (Gradio's session_hash is picked by the client: `"bot"` would do).

Every request without a valid `zoo-session` cookie gets a new random id, signed with a key that lives only
in this process, in a cookie (HttpOnly, SameSite=Lax) set on the answer and seen by the request itself.
A client can only send back an id this server gave it: an invented or altered one fails the signature and
is replaced. The owner id is a hash of the session id, so it reveals nothing that could be sent back."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser

COOKIE = "zoo-session"
API_PREFIXES = ("/sdapi/", "/zoo/v1/")  # API callers are known by their login or address (modules/owners.py), not a cookie
_KEY = secrets.token_bytes(32)


def _signature(session_id: str) -> str:
    return hmac.new(_KEY, session_id.encode("ascii"), hashlib.sha256).hexdigest()[:32]


def new_cookie_value() -> str:
    session_id = secrets.token_urlsafe(24)
    return f"{session_id}.{_signature(session_id)}"


def session_id(cookie_value: str | None) -> str | None:
    """The session id in a cookie value this server issued; None for a missing, invented or altered one."""
    if not cookie_value or cookie_value.count(".") != 1:
        return None
    value, signature = cookie_value.split(".")
    try:
        good = hmac.compare_digest(signature, _signature(value))
    except (TypeError, UnicodeEncodeError):
        return None
    return hashlib.sha256(value.encode("ascii")).hexdigest()[:24] if good else None


def session_of(cookies: dict) -> str | None:
    return session_id((cookies or {}).get(COOKIE))


class UiSessions:
    """ASGI middleware: every HTTP request leaves with a valid session cookie."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or scope.get("path", "").startswith(API_PREFIXES)
                or session_of(cookie_parser(Headers(scope=scope).get("cookie", "")))):
            await self.app(scope, receive, send)
            return
        value = new_cookie_value()
        others = [part.strip() for part in Headers(scope=scope).get("cookie", "").split(";")
                  if part.strip() and part.split("=", 1)[0].strip() != COOKIE]
        headers = [(k, v) for k, v in scope["headers"] if k != b"cookie"]
        headers.append((b"cookie", "; ".join([*others, f"{COOKIE}={value}"]).encode("latin-1")))
        scope = {**scope, "headers": headers}
        secure = "; Secure" if scope.get("scheme") == "https" else ""

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(
                    "set-cookie", f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax{secure}")
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def install(app) -> None:
    """Put the session middleware in front of `app` (inside the guard, which wraps everything)."""
    app.add_middleware(UiSessions)
