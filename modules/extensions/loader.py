"""Finding and loading extensions: each enabled extension's scripts/*.py is imported, its Script
subclasses instantiated and its callbacks registered; anything that raises is reported and skipped.

An extension is all or nothing: if one of its files fails to import, none of its scripts or callbacks
are used (half an extension is harder to understand than none), and the rest of the app starts."""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import subprocess
import sys
import threading
import traceback
import types
from pathlib import Path

from modules.extensions import callbacks as callback_names
from modules.extensions.callbacks import Callbacks, loading_into
from modules.extensions.metadata import Extension, missing_requirements, read_extension
from modules.extensions.scripts import TABS, AlwaysVisible, Script
from modules.extensions.state import ExtensionState, default_extensions_dir, default_state_file

from modules.security.admins import Admins

log = logging.getLogger("extensions")

PACKAGE = "zoo_extensions"  # scripts are imported as zoo_extensions.<extension>.scripts.<file>
INSTALL_SCRIPT = "install.py"
INSTALL_TIMEOUT_SECONDS = 600


class Extensions:
    """The extensions of one app: found in a folder, enabled or not, loaded, with their scripts and callbacks."""

    def __init__(self, folder: Path | None = None, state: ExtensionState | None = None):
        self.folder = Path(folder) if folder is not None else None
        self.state = state
        self.items: list[Extension] = []
        self.scripts: list[Script] = []
        self.callbacks = Callbacks()
        self.install_refusal: str | None = "the app did not say where it listens"  # None: allowed
        self.admins = Admins()  # who may install, enable and disable (nobody until the app says)
        self._lock = threading.Lock()

    @classmethod
    def load_from(cls, folder: Path | None = None, state_file: Path | None = None) -> "Extensions":
        extensions = cls(folder or default_extensions_dir(), ExtensionState(state_file or default_state_file()))
        extensions.discover()
        extensions.load()
        return extensions

    # ---------------------------------------------------------------- finding
    def discover(self) -> list[Extension]:
        """Every extension folder, in load order: metadata `order`, then name."""
        found = []
        if self.folder is not None and self.folder.is_dir():
            for folder in self.folder.iterdir():
                if folder.is_dir() and not folder.name.startswith((".", "_")):
                    extension = read_extension(folder)
                    extension.enabled = (self.state.is_enabled(extension.name, extension.enabled_by_default)
                                         if self.state else extension.enabled_by_default)
                    found.append(extension)
        self.items = sorted(found, key=lambda e: e.sort_key)
        return self.items

    def find(self, name: str) -> Extension | None:
        return next((e for e in self.items if e.name == name), None)

    # ---------------------------------------------------------------- loading
    def load(self) -> None:
        for extension in self.items:
            if extension.enabled and not extension.errors and not extension.loaded:  # each once: scripts listed once
                self._load_one(extension)
        loaded = [e.name for e in self.items if e.loaded]
        failed = [e.name for e in self.items if e.enabled and not e.loaded]
        log.info("extensions: loaded %s%s", ", ".join(loaded) or "none",
                 f"; failed (see the Extensions tab): {', '.join(failed)}" if failed else "")

    def _load_one(self, extension: Extension) -> None:
        missing = missing_requirements(extension.requirements)
        if missing:
            extension.add_error("requirements", f"not installed: {', '.join(missing)} (pip install them, "
                                                 "or reinstall the extension)")
            return
        if not self._run_install_script(extension):
            return
        callbacks, scripts = Callbacks(), []
        package = _package_for(extension)
        for path in extension.script_files():
            where = f"scripts/{path.name}"
            try:
                with loading_into(callbacks, extension):
                    module = _import_script(package, path)
                    scripts += _instantiate(module, extension, path.name)
            except Exception as e:  # noqa: BLE001 - an extension's bug must not stop the app
                extension.add_error(where, e, traceback.format_exc())
                return
        self.scripts += scripts
        for name in callback_names.NAMES:
            for callback in callbacks.registered(name):
                self.callbacks.add(name, callback.fn, extension)
        extension.script_titles = [s.title() for s in scripts]
        extension.loaded = True

    def _run_install_script(self, extension: Extension) -> bool:
        """install.py runs once per version of it (a changed file runs again), before the scripts load."""
        path = extension.folder / INSTALL_SCRIPT
        if not path.is_file():
            return True
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if self.state is not None and self.state.install_hashes.get(extension.name) == digest:
            return True
        ok, output = run_install_script(extension.folder)
        if not ok:
            extension.add_error(INSTALL_SCRIPT, "install.py failed", output)
            return False
        log.info("extension %s: ran install.py%s", extension.name, f"\n{output}" if output.strip() else "")
        if self.state is not None:
            self.state.remember_install(extension.name, digest)
        return True

    # ---------------------------------------------------------------- using
    def scripts_for(self, tab: str, always_on: bool | None = None) -> list[Script]:
        return [s for s in self.scripts if s.tab == tab and s.extension.enabled
                and (always_on is None or s.always_on == always_on)]

    def css(self) -> str:
        return "\n".join(f"/* {e.name} */\n{e.css()}" for e in self.items if e.loaded and e.css())

    def javascript(self) -> list[tuple[str, str]]:
        """(file name, code) of every loaded extension's javascript/*.js."""
        return [(f"{e.name}/{p.name}", p.read_text(encoding="utf8")) for e in self.items if e.loaded
                for p in e.javascript_files()]

    def set_enabled(self, enabled: dict[str, bool]) -> None:
        """Persist the choice; hooks of a disabled extension stop at once, the rest takes a restart."""
        unknown = [name for name in enabled if self.find(name) is None]
        if unknown:
            from modules.errors import InvalidRequest

            raise InvalidRequest("extensions", f"unknown extension {unknown[0]!r}")
        if self.state is not None:
            self.state.set_enabled(enabled)
        for name, on in enabled.items():
            self.find(name).enabled = on

    def attach(self, backend) -> None:
        """Give the backend these extensions and hook on_model_loaded into its pipeline manager."""
        backend.extensions = self
        backend.manager.on_model_loaded.append(lambda model: self.callbacks.run(callback_names.MODEL_LOADED, model))

    def ui_tabs(self) -> list[tuple[Extension, object, str, str]]:
        """(extension, gr.Blocks, title, elem_id) of every tab the extensions add; bad entries are reported."""
        tabs = []
        for callback, result in self.callbacks.run(callback_names.UI_TABS):
            try:
                for blocks, title, elem_id in result or []:
                    tabs.append((callback.extension, blocks, str(title), str(elem_id)))
                    callback.extension.tab_titles.append(str(title))
            except (TypeError, ValueError) as e:
                callback.extension.add_error(callback_names.UI_TABS, f"must return a list of (gr.Blocks, title, "
                                                                      f"elem_id), got {result!r} ({e})")
        return tabs

    def app_started(self, demo, app) -> None:
        self.callbacks.run(callback_names.APP_STARTED, demo, app)


def run_install_script(folder: Path) -> tuple[bool, str]:
    """Run folder/install.py with this Python, in the folder; (succeeded, its output)."""
    try:
        done = subprocess.run([sys.executable, INSTALL_SCRIPT], cwd=folder, capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return False, f"install.py ran for over {INSTALL_TIMEOUT_SECONDS} s and was stopped"
    except OSError as e:
        return False, f"install.py could not be started: {e}"
    output = (done.stdout + done.stderr).strip()
    return done.returncode == 0, output if done.returncode == 0 else f"exit code {done.returncode}\n{output}"


# ---------------------------------------------------------------- importing
def _package_for(extension: Extension) -> str:
    """A package per extension (zoo_extensions.<name>, whose path is the extension's folder), so a script
    can import its own helpers relatively: `from ..helpers import thing` for extensions/<name>/helpers.py."""
    if PACKAGE not in sys.modules:
        root = types.ModuleType(PACKAGE)
        root.__path__ = []
        sys.modules[PACKAGE] = root
    base = f"{PACKAGE}.{re.sub(r'[^0-9A-Za-z_]', '_', extension.name)}"
    name, n = base, 1
    while name in sys.modules and getattr(sys.modules[name], "__file__", None) != str(extension.folder):
        n += 1
        name = f"{base}_{n}"
    for stale in [m for m in sys.modules if m.startswith(f"{name}.")]:  # loaded again (tests): import afresh
        del sys.modules[stale]
    for package, path in ((name, extension.folder), (f"{name}.scripts", extension.folder / "scripts")):
        module = types.ModuleType(package)
        module.__path__ = [str(path)]
        module.__file__ = str(path)
        module.__package__ = package
        sys.modules[package] = module
    return f"{name}.scripts"


def _import_script(package: str, path: Path) -> types.ModuleType:
    name = f"{package}.{path.stem}"
    if name in sys.modules:  # a sibling imported it already (from . import helper)
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _instantiate(module: types.ModuleType, extension: Extension, filename: str) -> list[Script]:
    """One instance per Script subclass defined in the module and per tab it shows in."""
    scripts = []
    classes = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Script)
               and c is not Script and c.__module__ == module.__name__]
    for cls in classes:
        for tab in TABS:
            script = cls()
            script.extension, script.filename, script.tab = extension, filename, tab
            shown = script.show(tab)
            if not shown:
                continue
            title = script.title()
            if not isinstance(title, str) or not title.strip():
                raise TypeError(f"{cls.__name__}.title() must return a name, got {title!r}")
            if shown is not AlwaysVisible and shown is not True:
                raise TypeError(f"{cls.__name__}.show() must return True, False or AlwaysVisible, got {shown!r}")
            scripts.append(script)
    return scripts
