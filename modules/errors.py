"""Errors a user can cause and fix. The UI shows the message; the API returns it as 4xx JSON.

Anything else is a bug or a failure of the server: the client is told "internal error" and an id, and
the log has the traceback under that id (a class name or traceback would tell a visitor about the code)."""
from __future__ import annotations

import logging
import secrets
from pathlib import Path

from modules.public_paths import scrub, shown

log = logging.getLogger("errors")


class UserError(Exception):
    """Something the user asked for or supplied is wrong; the message says what to change."""


class InvalidRequest(UserError):
    """A request field has a bad value. `field` is the user's name for it (e.g. "width")."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class BadModelFile(UserError):
    """A model file or folder cannot be used; the message names the file and says why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{Path(path).name}: {reason}")


class ModelNotFound(UserError):
    """A request names a checkpoint or model that the registry does not know."""

    def __init__(self, kind: str, name: str):
        self.kind = kind
        self.name = name
        super().__init__(f"unknown {kind} {name!r}: pick one from the list (or press refresh after adding files)")


def report_internal_error(error: BaseException, where: str) -> str:
    """Log `error` with its traceback under a new short id, and return the id (all a client is told)."""
    error_id = secrets.token_hex(6)
    log.error("internal error %s in %s", error_id, where, exc_info=(type(error), error, error.__traceback__))
    return error_id


def internal_error_message(error_id: str) -> str:
    return f"internal error (id {error_id}): the details are in the server log"


def shown_message(error: BaseException, where: str) -> str:
    """What a user sees of an error: a UserError's message (server paths made relative), the reason of an
    OSError (a full disk), else "internal error" with an id that the log has (the error goes to the log only)."""
    if isinstance(error, UserError):
        return scrub(str(error))
    if isinstance(error, OSError) and error.strerror:  # a full disk, a read-only folder: the user can act on it
        log.warning("%s: %s", where, error)
        return f"could not write or read a file: {error.strerror}" + (
            f" ({shown(error.filename)})" if isinstance(error.filename, (str, Path)) else "")
    return internal_error_message(report_internal_error(error, where))
