"""One extension: its folder, its extension.toml (name, version, requirements, order), and what went wrong.

    extensions/<name>/
        extension.toml      name, version, description, requirements, order, enabled_by_default (all optional)
        scripts/*.py        imported at start, in file-name order
        install.py          optional: run once when installed (and again when it changes)
        style.css           optional: added to the page
        javascript/*.js     optional: added to the page
"""
from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass, field
from importlib import metadata as package_metadata
from pathlib import Path

METADATA_FILE = "extension.toml"
DEFAULT_ORDER = 100
MAX_ERRORS = 20  # runtime errors kept per extension; the log has them all
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

log = logging.getLogger("extensions")


@dataclass
class ExtensionError:
    where: str       # "scripts/foo.py", "on_ui_tabs", "X/Y/Z plot: process" ...
    message: str     # one line: the exception's type and text
    traceback: str = ""


@dataclass
class Extension:
    name: str                    # the folder's name: the extension's id
    folder: Path
    title: str = ""              # extension.toml's name; the folder name when it has none
    version: str = ""
    description: str = ""
    requirements: tuple[str, ...] = ()
    order: int = DEFAULT_ORDER   # lower loads (and runs its hooks) first; then by name
    enabled_by_default: bool = True  # False: off until someone turns it on (a developers' example)
    enabled: bool = True
    loaded: bool = False
    errors: list[ExtensionError] = field(default_factory=list)
    script_titles: list[str] = field(default_factory=list)
    tab_titles: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.enabled:
            return "disabled"
        if self.errors:
            return "error"
        return "loaded" if self.loaded else "not loaded"

    @property
    def sort_key(self) -> tuple[int, str]:
        return self.order, self.name.lower()

    def add_error(self, where: str, error: BaseException | str, traceback: str = "") -> ExtensionError:
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        entry = ExtensionError(where, message, traceback)
        self.errors.append(entry)
        del self.errors[:-MAX_ERRORS]
        log.error("extension %s: %s: %s%s", self.name, where, message, f"\n{traceback}" if traceback else "")
        return entry

    def css(self) -> str:
        path = self.folder / "style.css"
        return path.read_text(encoding="utf8") if path.is_file() else ""

    def javascript_files(self) -> list[Path]:
        folder = self.folder / "javascript"
        return sorted(folder.glob("*.js")) if folder.is_dir() else []

    def script_files(self) -> list[Path]:
        folder = self.folder / "scripts"
        return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_")) if folder.is_dir() else []


def read_extension(folder: Path) -> Extension:
    """The extension in `folder`; a bad extension.toml is recorded as an error (and the extension not loaded)."""
    extension = Extension(name=folder.name, folder=folder, title=folder.name)
    path = folder / METADATA_FILE
    if not path.is_file():
        return extension
    try:
        data = tomllib.loads(path.read_text(encoding="utf8"))
        extension.title = _text(data, "name", folder.name)
        extension.version = _text(data, "version", "")
        extension.description = _text(data, "description", "")
        order = data.get("order", DEFAULT_ORDER)
        if isinstance(order, bool) or not isinstance(order, int):
            raise ValueError(f"order must be a whole number, got {order!r}")
        extension.order = order
        by_default = data.get("enabled_by_default", True)
        if not isinstance(by_default, bool):
            raise ValueError(f"enabled_by_default must be true or false, got {by_default!r}")
        extension.enabled_by_default = by_default
        requirements = data.get("requirements", [])
        if not isinstance(requirements, list) or not all(isinstance(r, str) for r in requirements):
            raise ValueError("requirements must be a list of pip requirement strings, e.g. [\"numpy>=1.26\"]")
        extension.requirements = tuple(requirements)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as e:
        extension.add_error(METADATA_FILE, e)
    return extension


def missing_requirements(requirements: tuple[str, ...]) -> list[str]:
    """The requirements that are not installed (or installed at a version the specifier excludes)."""
    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            missing.append(f"{text} (not a valid requirement)")
            continue
        try:
            installed = package_metadata.version(requirement.name)
        except package_metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            missing.append(f"{text} (found {installed})")
    return missing


def _text(data: dict, key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text, got {value!r}")
    return value
