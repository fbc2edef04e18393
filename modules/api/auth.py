"""--api-auth: HTTP Basic on every API route, /docs and /openapi.json.

The authenticated user name is the owner of the jobs it starts, so one user's interrupt or progress
call never touches another user's job."""
from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from modules.cmd_args import gradio_credentials, parse_credentials


class _Basic(HTTPBasic):
    """HTTP Basic that reads UTF-8 user names and passwords (RFC 7617), and never raises itself."""

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        scheme, _, param = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(param.strip(), validate=True).decode("utf8").partition(":")
        except (ValueError, UnicodeDecodeError, binascii.Error):
            return None
        return HTTPBasicCredentials(username=user, password=password) if sep else None


_basic = _Basic(auto_error=False, description="Set with --api-auth user:password")


def api_logins(args) -> list[tuple[str, str]]:
    """--api-auth; without it, the UI's --gradio-auth logins, so a UI login never leaves the API open."""
    if getattr(args, "api_auth", None):
        return parse_credentials(args.api_auth, "--api-auth")
    if getattr(args, "gradio_auth", None) or getattr(args, "gradio_auth_path", None):
        return gradio_credentials(args)
    return []


def user_dependency(credentials: list[tuple[str, str]]) -> Callable[..., str | None]:
    """A FastAPI dependency: the caller's user name, None when the API is open, 401 for a bad login."""
    accounts = [(user.encode("utf8"), password.encode("utf8")) for user, password in credentials]

    def current_user(given: HTTPBasicCredentials | None = Depends(_basic)) -> str | None:
        if not accounts:
            return None
        if given is not None:
            user, password = given.username.encode("utf8"), given.password.encode("utf8")
            matched = None
            for known_user, known_password in accounts:  # look at every account: no early exit to time
                same_user = secrets.compare_digest(user, known_user)
                same_password = secrets.compare_digest(password, known_password)
                if same_user and same_password:
                    matched = given.username
            if matched is not None:
                return matched
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Incorrect or missing API credentials",
                            headers={"WWW-Authenticate": "Basic"})

    return current_user
