"""Which extensions are turned off, and which install.py has run: a small JSON file next to the app.

New extensions are on (as in A1111), so mostly the disabled ones are listed; an extension whose
extension.toml says `enabled_by_default = false` (the developers' Example) is on only once listed under
"enabled". Written atomically."""
from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from modules import paths
from modules.atomic_files import replacing

log = logging.getLogger("extensions")

STATE_FILE_ENV = "ZOO_EXTENSIONS_STATE"
EXTENSIONS_DIR_ENV = "ZOO_EXTENSIONS_DIR"


def default_state_file() -> Path:
    return Path(os.environ.get(STATE_FILE_ENV) or paths.APP_ROOT / "extensions-state.json")


def default_extensions_dir() -> Path:
    return Path(os.environ.get(EXTENSIONS_DIR_ENV) or paths.EXTENSIONS_DIR)


class ExtensionState:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.disabled: set[str] = set()
        self.enabled: set[str] = set()  # turned on explicitly: matters for extensions off by default
        self.install_hashes: dict[str, str] = {}  # extension name -> sha256 of the install.py that ran
        self.load()

    def load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf8"))
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as e:
            log.warning("%s cannot be read (%s): every extension is enabled", self.path, e)
            data = {}
        if not isinstance(data, dict):
            data = {}
        self.disabled = {n for n in _names(data.get("disabled"))}
        self.enabled = {n for n in _names(data.get("enabled"))} - self.disabled
        hashes = data.get("install_hashes", {})
        hashes = hashes if isinstance(hashes, dict) else {}
        self.install_hashes = {k: v for k, v in hashes.items() if isinstance(v, str)}

    def is_enabled(self, name: str, by_default: bool = True) -> bool:
        return name not in self.disabled and (by_default or name in self.enabled)

    def set_enabled(self, enabled: dict[str, bool]) -> None:
        with self._lock:
            for name, on in enabled.items():
                (self.disabled.discard if on else self.disabled.add)(name)
                (self.enabled.add if on else self.enabled.discard)(name)
            self._save()

    def remember_install(self, name: str, digest: str) -> None:
        with self._lock:
            self.install_hashes[name] = digest
            self._save()

    def _save(self) -> None:
        data = {"disabled": sorted(self.disabled), "enabled": sorted(self.enabled),
                "install_hashes": dict(sorted(self.install_hashes.items()))}
        with replacing(self.path, prefix=".extensions-") as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf8")


def _names(value) -> list[str]:
    return [n for n in value if isinstance(n, str)] if isinstance(value, list) else []
