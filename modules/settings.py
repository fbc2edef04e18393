"""Persisted options (A1111's `config.json`): defaults for later jobs, never the values of a running one.

Every job carries its own checkpoint, sampler, clip skip ...; these options only say what a job gets
when it does not name one. The file is written atomically (temp file, fsync, rename), so a crash
never leaves a half-written config behind."""
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


# The options we honour, under A1111's keys so clients that set them keep working.
OPTIONS: dict[str, Option] = {
    "sd_model_checkpoint": Option(None, "Checkpoint used by jobs that do not name one"),
    "CLIP_stop_at_last_layers": Option(1, "Clip skip used by API jobs that do not set one", 1, 12),
    "grid_save": Option(True, "Make and save a grid of every batch of more than one image (txt2img-grids)"),
}


class Settings:
    """Options kept in a JSON file. Unknown keys found in the file are kept as they are."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._values: dict = {}
        self.load()

    def load(self) -> None:
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
        with self._lock:
            return self._values.get(key, OPTIONS[key].default if key in OPTIONS else None)

    def as_dict(self) -> dict:
        with self._lock:
            return {**{key: option.default for key, option in OPTIONS.items()}, **self._values}

    def update(self, changes: dict) -> dict:
        """Validate every known key, then store them all at once; returns the stored changes.
        Raises InvalidRequest naming the first bad key, and then stores nothing."""
        checked = {key: validate(key, value) for key, value in changes.items() if key in OPTIONS}
        if checked:
            with self._lock:
                values = {**self._values, **checked}
                _write_atomically(self.path, values)
                self._values = values
        return checked


def validate(key: str, value):
    option = OPTIONS[key]
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
