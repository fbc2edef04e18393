"""The settings service (A1111's `config.json`): defaults for later jobs, never the values of a running one.

One instance per app (`backend.settings`), read at start-up whatever the flags, and used alike by the UI,
the API and jobs: a job that does not name a checkpoint, a clip skip or whether to save gets these. Every
job then carries its own values, and its infotext records them. Options keep A1111's names, so clients
that set them keep working. Some options are also each logged-in user's own (the checkpoint they pick in
the UI, modules/preferences.py): theirs wins for their jobs; only an admin changes the server-wide value.
A flag such as --ckpt overrides an option for this run, until someone saves that option.
The file is written atomically (temp file, fsync, rename), so a crash never leaves a half-written config."""
from __future__ import annotations

import json
import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from modules import paths
from modules.atomic_files import replacing
from modules.errors import InvalidRequest
from modules.preferences import UserPreferences, preferences_file
from modules.user_values import shown

log = logging.getLogger(__name__)

SETTINGS_FILE_ENV = "ZOO_SETTINGS_FILE"  # points the options file elsewhere (tests, several installs)


def default_settings_file() -> Path:
    return Path(os.environ.get(SETTINGS_FILE_ENV) or paths.APP_ROOT / "config.json")


@dataclass(frozen=True)
class Option:
    default: object
    label: str
    minimum: int | None = None
    maximum: int | None = None
    per_user: bool = False  # a logged-in user's own pick (preferences) wins over the server-wide value


# The options we honour, under A1111's keys.
OPTIONS: dict[str, Option] = {
    "sd_model_checkpoint": Option(None, "Checkpoint used by jobs that do not name one", per_user=True),
    "CLIP_stop_at_last_layers": Option(1, "Clip skip used by jobs that do not set one", 1, 12),
    "samples_save": Option(True, "Save the images of UI jobs (API jobs say so themselves: save_images)"),
    "grid_save": Option(True, "Save a grid of each batch beside its images"),
    # Live previews (modules/generation/preview.py): Full, Approx NN, Approx cheap or TAESD; the Approx NN and
    # TAESD files come from models/VAE-approx (Approx cheap when absent); every N steps, 0 or -1: none.
    "show_progress_type": Option("Approx cheap", "Live preview method: Full, Approx NN, Approx cheap or TAESD"),
    "show_progress_every_n_steps": Option(5, "Live preview every N sampling steps (0 or -1: none)", -1, 32),
}


class Settings:
    """Options kept in a JSON file (none: in memory only). Unknown keys found in the file are kept as they are."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path is not None else None
        self.preferences = UserPreferences.at(preferences_file(self.path)) if self.path else UserPreferences(None)
        self._lock = threading.Lock()
        self._values: dict = {}
        self._overrides: dict = {}  # for this run only (flags), never saved
        self.load()

    def load(self) -> None:
        values: object = {}
        if self.path is not None:
            try:
                values = json.loads(self.path.read_text(encoding="utf8"))
            except FileNotFoundError:
                values = {}
            except (OSError, ValueError) as e:
                log.warning("%s cannot be read (%s); starting from default options", self.path, e)
                values = {}
        if not isinstance(values, dict):
            log.warning("%s does not hold a JSON object; starting from default options", self.path)
            values = {}
        with self._lock:
            self._values = values

    def get(self, key: str):
        """The server-wide value: this run's override, else the saved one, else the default."""
        with self._lock:
            if key in self._overrides:
                return self._overrides[key]
            return self._values.get(key, OPTIONS[key].default if key in OPTIONS else None)

    def for_user(self, key: str, user: str | None):
        """A logged-in user's own value of a per-user option, else the server-wide one."""
        if user is not None and key in OPTIONS and OPTIONS[key].per_user:
            own = self.preferences.get(user, key)
            if own is not None:
                return own
        return self.get(key)

    def override(self, key: str, value) -> None:
        """This run's value (a flag's), not saved; saving the option later replaces it."""
        with self._lock:
            self._overrides[key] = value

    def as_dict(self) -> dict:
        with self._lock:
            return {**{key: option.default for key, option in OPTIONS.items()}, **self._values, **self._overrides}

    def update(self, changes: dict) -> dict:
        """Validate every known key, then store them all at once; returns the stored changes.
        Raises InvalidRequest naming the first bad key, and then stores nothing."""
        checked = {key: validate(key, value) for key, value in changes.items() if key in OPTIONS}
        if checked:
            with self._lock:
                values = {**self._values, **checked}
                if self.path is not None:
                    _write_atomically(self.path, values)
                self._values = values
                for key in checked:
                    self._overrides.pop(key, None)
        return checked


def validate(key: str, value):
    option = OPTIONS[key]
    if isinstance(option.default, bool):
        if not isinstance(value, bool):
            raise InvalidRequest(key, f"must be true or false, got {shown(value)}")
        return value
    if option.minimum is not None:
        # NaN and 1e400 (inf once parsed) are floats too: int() of them would raise, not refuse.
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or (isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()))):
            raise InvalidRequest(key, f"must be a whole number, got {shown(value)}")
        if not option.minimum <= value <= option.maximum:
            raise InvalidRequest(key, f"must be between {option.minimum} and {option.maximum}, got {shown(value)}")
        return int(value)
    if isinstance(option.default, bool):
        if not isinstance(value, bool):
            raise InvalidRequest(key, f"must be true or false, got {shown(value)}")
        return value
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(key, f"must be text, got {shown(value)}")
    return value


def _write_atomically(path: Path, values: dict) -> None:
    with replacing(path, prefix=".config-") as tmp:
        tmp.write_text(json.dumps(values, indent=2, ensure_ascii=False) + "\n", encoding="utf8")
