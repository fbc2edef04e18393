"""Errors a user can cause and fix. The UI shows the message; the API returns it as 4xx JSON."""
from __future__ import annotations

from pathlib import Path


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
