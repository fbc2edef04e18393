"""Who owns a job, a file or a preference: one name per user or session, never a value the client picks.

- "user:<name>": a logged-in user (the UI's --gradio-auth login, or the API's HTTP Basic login);
- "ui-session:<id>": an anonymous browser, by the session cookie the server issued to it
  (modules/security/ui_session.py), so a client cannot name another session, nor an API user;
- "api-anon:<address>": an API caller without logins (there is none to tell them apart by).
The kinds never overlap, so an anonymous UI session never shares an owner with an API user."""
from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

USER, UI_SESSION, API_ANON = "user:", "ui-session:", "api-anon:"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_APP_FOLDER_ENDINGS = ("-images", "-grids", "-videos")  # outputs/txt2img-images ...: never a user's folder


def user(name: str) -> str:
    return USER + name


def ui_session(session_id: str) -> str:
    return UI_SESSION + session_id


def api_anonymous(address: str | None) -> str:
    return API_ANON + (address or "unknown")


def nobody_else() -> str:
    """An owner no other request can ever have (a UI call without a session cookie, e.g. a raw API client)."""
    return UI_SESSION + "once-" + uuid.uuid4().hex


def queue_user(owner: str | None, address: str | None = None) -> str:
    """Who waits in the device's line (--queue-per-user, turns): a logged-in user by name; anyone anonymous
    by the address they connect from, so one client cannot take more turns by opening more sessions.
    An anonymous API caller's owner already holds its address."""
    if owner and owner.startswith(USER):
        return owner
    if address is None and owner and owner.startswith(API_ANON):
        address = owner[len(API_ANON):]
    return "address:" + (address or "unknown")


def user_name(owner: str | None) -> str | None:
    """The login name of a user's owner id; None for anonymous owners."""
    return owner[len(USER):] if owner and owner.startswith(USER) else None


def user_folder(name: str) -> str:
    """The folder of a user's files under outputs/: the name itself when it is a plain file name, else a
    name made from its hash (a login name may hold '/', '..' or characters no file system takes)."""
    if _PLAIN_NAME.fullmatch(name) and not name.endswith((".", *_APP_FOLDER_ENDINGS)):
        return name
    return "user-" + hashlib.sha256(name.encode("utf8")).hexdigest()[:16]


def output_root(outdir: Path, owner: str | None) -> Path:
    """Where an owner's files go: outputs/<user>/ for a logged-in user, outputs/ for anyone anonymous."""
    name = user_name(owner)
    return Path(outdir) / user_folder(name) if name is not None else Path(outdir)
