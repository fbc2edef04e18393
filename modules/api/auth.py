"""--api-auth: HTTP Basic on every API route, /docs and /openapi.json.

The authenticated user name is the owner of the jobs it starts, so one user's interrupt or progress
call never touches another user's job."""
from __future__ import annotations

import base64
import binascii
import secrets

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from modules.cmd_args import gradio_credentials, parse_credentials


def api_logins(args) -> list[tuple[str, str]]:
    """--api-auth; without it, the UI's --gradio-auth logins, so a UI login never leaves the API open."""
    if getattr(args, "api_auth", None):
        return parse_credentials(args.api_auth, "--api-auth")
    if getattr(args, "gradio_auth", None) or getattr(args, "gradio_auth_path", None):
        return gradio_credentials(args)
    return []


def read_basic(request: Request) -> HTTPBasicCredentials | None:
    """The Basic credentials of a request, read as UTF-8 (RFC 7617); None when absent or malformed."""
    scheme, _, param = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(param.strip(), validate=True).decode("utf8").partition(":")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return None
    return HTTPBasicCredentials(username=user, password=password) if sep else None


class _Basic(HTTPBasic):
    """Declares Basic auth in the OpenAPI schema; the checking is Logins' own."""

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        return read_basic(request)


_basic = _Basic(scheme_name="Basic", auto_error=False, description="Set with --api-auth user:password")


class Logins:
    def __init__(self, credentials: list[tuple[str, str]]):
        self._accounts = [(user.encode("utf8"), password.encode("utf8")) for user, password in credentials]

    @property
    def required(self) -> bool:
        return bool(self._accounts)

    def user_of(self, request: Request) -> str | None:
        """The caller's user name; None when the API is open; a 401 for a missing or wrong login."""
        if not self._accounts:
            return None
        user = self.logged_in_user(request)
        if user is not None:
            return user
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Incorrect or missing API credentials",
                            headers={"WWW-Authenticate": "Basic"})

    def logged_in_user(self, request: Request) -> str | None:
        """The user name of a request with a right Basic login, else None (no exception)."""
        given = read_basic(request)
        if given is None or not self._accounts:
            return None
        user, password = given.username.encode("utf8"), given.password.encode("utf8")
        matched = False
        for known_user, known_password in self._accounts:  # every account, so timing tells nothing
            same_user = secrets.compare_digest(user, known_user)
            same_password = secrets.compare_digest(password, known_password)
            matched |= same_user and same_password
        return given.username if matched else None

    def dependency(self):
        """A FastAPI dependency giving the user name (and showing Basic auth in the docs)."""
        def current_user(request: Request, _declared: HTTPBasicCredentials | None = Depends(_basic)) -> str | None:
            return self.user_of(request)
        return current_user
