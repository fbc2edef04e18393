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
from modules import a1111_options

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
    choices: tuple[str, ...] | None = None  # the only values a text option takes


IMAGE_FORMATS = ("png", "jpg", "jpeg", "webp")
PREVIEW_METHODS = ("Full", "Approx NN", "Approx cheap", "TAESD")  # A1111's; modules/generation/preview.py

# The options we honour, under A1111's keys. Per-user ones are each logged-in user's own (the Settings tab,
# POST options); the others are the server's, which only an admin changes.
OPTIONS: dict[str, Option] = {
    "sd_model_checkpoint": Option(None, "Checkpoint used by jobs that do not name one", per_user=True),
    "sd_vae": Option("Automatic", "VAE used to decode the pictures (Automatic: the checkpoint's own)",
                     per_user=True),
    "CLIP_stop_at_last_layers": Option(1, "Clip skip used by jobs that do not set one", 1, 12),
    "samples_save": Option(True, "Save the images of UI jobs (API jobs say so themselves: save_images)"),
    "grid_save": Option(True, "Save a grid of each batch beside its images"),
    "samples_format": Option("png", "File format of saved images", per_user=True, choices=IMAGE_FORMATS),
    "grid_format": Option("png", "File format of saved grids", per_user=True, choices=IMAGE_FORMATS),
    "jpeg_quality": Option(80, "Quality of saved JPEG and WEBP files", 1, 100, per_user=True),
    "send_seed": Option(True, "PNG Info's Send to txt2img also sends the seed", per_user=True),
    "eta_noise_seed_delta": Option(0, "Eta noise seed delta (ENSD): added to the seed of the ancestral samplers' "
                                      "noise, to reproduce A1111 pictures made with it", 0, 2**32 - 1,
                                   per_user=True),
    "face_restoration": Option(False, "Restore faces (GFPGAN, from models/GFPGAN) in jobs that do not say "
                                      "(A1111's Settings > Face restoration; the API's restore_faces)", per_user=True),
    # A1111's default is CodeFormer, which does not run here: empty means the first restorer there (GFPGAN).
    "face_restoration_model": Option(None, "Face restorer used by Restore faces (empty: GFPGAN, when "
                                           "models/GFPGAN holds a file)", per_user=True),
    # Live previews (modules/generation/preview.py): Full, Approx NN, Approx cheap or TAESD; the Approx NN and
    # TAESD files come from models/VAE-approx (Approx cheap when absent); every N steps, 0 or -1: none.
    "show_progress_type": Option("Approx cheap", "Live preview method", choices=PREVIEW_METHODS),
    "show_progress_every_n_steps": Option(5, "Live preview every N sampling steps (0 or -1: none)", -1, 32),
    # A1111's "FP8 weight": the denoiser kept in fp8, computed in --precision's dtype (models/fp8_storage.py);
    # fp8 and GGUF files keep their own storage whatever it says. Takes effect at a checkpoint's next load.
    "fp8_storage": Option("Disable", "FP8 weight: keep the denoiser's weights in fp8 (half of bf16's memory, "
                                     "slightly different pictures)", choices=("Disable", "Enable for SDXL", "Enable")),
    # Ours: a preview is skipped while previews would take more than this share of the sampling time (each
    # method's cost is measured as it runs); 0: every N steps whatever they cost, as A1111 does.
    "live_preview_time_budget": Option(5, "Live previews take at most this % of sampling time (0: no limit)", 0, 100),
}

# Keys we do not act on are kept as clients send them (a client that reads every option and writes them back
# keeps working), within bounds: a config file is no place for a client's megabytes.
MAX_KEY_CHARS = 200
MAX_VALUE_BYTES = 16_384
MAX_UNKNOWN_KEYS = 200  # beyond A1111's own keys
A1111_DEFAULTS: dict = a1111_options.defaults()


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
            return self._values.get(key, default_value(key))

    def for_user(self, key: str, user: str | None):
        """A logged-in user's own value of a per-user option (or of one we do not act on), else the
        server-wide one."""
        if user is not None and (key not in OPTIONS or OPTIONS[key].per_user):
            own = self.preferences.get(user, key)
            if own is not None:
                return own
        return self.get(key)

    def override(self, key: str, value) -> None:
        """This run's value (a flag's), not saved; saving the option later replaces it."""
        with self._lock:
            self._overrides[key] = value

    def as_dict(self, user: str | None = None) -> dict:
        """Every option: A1111's keys with their defaults, ours, what was saved; a user's own values over them."""
        with self._lock:
            values = {**A1111_DEFAULTS, **{key: option.default for key, option in OPTIONS.items()},
                      **self._values, **self._overrides}
        if user is not None:
            values.update({key: value for key, value in self.preferences.all(user).items()
                           if key not in OPTIONS or OPTIONS[key].per_user})
        return values

    def update(self, changes: dict) -> dict:
        """Validate every key (ours by type and range, the rest by size), then store them all at once;
        returns the stored changes. Raises InvalidRequest naming the first bad key, and then stores nothing."""
        with self._lock:
            known = set(self._values)
        checked = checked_changes(changes, known)
        if checked:
            with self._lock:
                values = {**self._values, **checked}
                if self.path is not None:
                    _write_atomically(self.path, values)
                self._values = values
                for key in checked:
                    self._overrides.pop(key, None)
        return checked

    def update_for_user(self, user: str, changes: dict) -> dict:
        """A logged-in user's own options: per-user ones and those we do not act on (never the server's)."""
        server_wide = sorted(k for k in changes if k in OPTIONS and not OPTIONS[k].per_user)
        if server_wide:
            raise PermissionError(server_wide[0])
        checked = checked_changes(changes, set(self.preferences.all(user)))
        self.preferences.update(user, checked)
        return checked


def default_value(key: str):
    return OPTIONS[key].default if key in OPTIONS else A1111_DEFAULTS.get(key)


def checked_changes(changes: dict, known: set[str]) -> dict:
    """`changes` with our options validated, and the others bounded: InvalidRequest names the first bad key."""
    checked = {}
    unknown = {k for k in known if k not in OPTIONS and k not in A1111_DEFAULTS}
    for key, value in changes.items():
        if key in OPTIONS:
            checked[key] = validate(key, value)
            continue
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
            raise InvalidRequest(shown(key), f"option names are 1 to {MAX_KEY_CHARS} characters long")
        try:  # as the config file will hold it: UTF-8 JSON (an unpaired surrogate cannot be written)
            key.encode("utf-8")
            size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidRequest(shown(key), "contains an invalid character (an unpaired surrogate)") from None
        except (TypeError, ValueError):
            raise InvalidRequest(key, "must be a JSON value") from None
        if size > MAX_VALUE_BYTES:
            raise InvalidRequest(key, f"is {size} bytes of JSON, over the limit of {MAX_VALUE_BYTES} for an option")
        if key not in A1111_DEFAULTS:
            unknown.add(key)
            if len(unknown) > MAX_UNKNOWN_KEYS:
                raise InvalidRequest(key, f"too many options that are not A1111's: at most {MAX_UNKNOWN_KEYS}")
        checked[key] = value
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
    if option.choices is not None:  # in any case; kept as the choice is written
        choice = {c.lower(): c for c in option.choices}.get(value.lower()) if isinstance(value, str) else None
        if choice is None:
            raise InvalidRequest(key, f"must be one of {', '.join(option.choices)}, got {shown(value)}")
        return choice
    return value


def _write_atomically(path: Path, values: dict) -> None:
    with replacing(path, prefix=".config-") as tmp:
        tmp.write_text(json.dumps(values, indent=2, ensure_ascii=False) + "\n", encoding="utf8")
