"""Each logged-in user's own preferences (the checkpoint they picked in the UI), apart from the server-wide
options (modules/settings.py, which reads these for its per-user options), which only an admin changes.
Kept in a JSON file beside the options file, written atomically (no file: in memory only, as for a backend
built without a settings file). Anonymous users have no saved preferences: their picks last for their page."""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from modules.atomic_files import replacing

log = logging.getLogger(__name__)

CHECKPOINT = "sd_model_checkpoint"


def preferences_file(settings_file: Path) -> Path:
    return Path(settings_file).with_name("user-preferences.json")


class UserPreferences:
    _open: dict[Path, "UserPreferences"] = {}
    _open_lock = threading.Lock()

    @classmethod
    def at(cls, path: Path) -> "UserPreferences":
        """The one instance for this file in this process (the UI and the API share it)."""
        key = Path(path).resolve()
        with cls._open_lock:
            if key not in cls._open:
                cls._open[key] = cls(key)
            return cls._open[key]

    def __init__(self, path: Path | None):
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._users: dict[str, dict] = {}
        if self.path is None:
            return
        try:
            users = json.loads(self.path.read_text(encoding="utf8"))
            self._users = {k: v for k, v in users.items() if isinstance(v, dict)} if isinstance(users, dict) else {}
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as e:
            log.warning("%s cannot be read (%s); starting without user preferences", self.path, e)

    def get(self, user: str | None, key: str):
        if user is None:
            return None
        with self._lock:
            return self._users.get(user, {}).get(key)

    def all(self, user: str | None) -> dict:
        if user is None:
            return {}
        with self._lock:
            return dict(self._users.get(user, {}))

    def set(self, user: str | None, key: str, value) -> None:
        """Remember `value` for a logged-in user; nothing is kept for anonymous users."""
        self.update(user, {key: value})

    def update(self, user: str | None, values: dict) -> None:
        """Remember several values at once for a logged-in user (one write)."""
        if user is None or not values:
            return
        with self._lock:
            users = {**self._users, user: {**self._users.get(user, {}), **values}}
            if self.path is not None:
                with replacing(self.path, prefix=".user-preferences-") as tmp:
                    tmp.write_text(json.dumps(users, indent=2, ensure_ascii=False) + "\n", encoding="utf8")
            self._users = users
