"""Callbacks an extension registers while its scripts are imported, as in A1111's script_callbacks:

    from modules.extensions import callbacks

    def add_tab():
        with gr.Blocks() as tab:
            ...
        return [(tab, "My tab", "my_tab")]

    callbacks.on_ui_tabs(add_tab)

Registration goes to the extension set being loaded (not to a process-wide list), so each set of
extensions, and each test, has its own. A callback that raises is reported against its extension
and skipped; the others still run."""
from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modules.errors import UserError
from modules.extensions.metadata import Extension

log = logging.getLogger("extensions")

UI_TABS = "on_ui_tabs"            # () -> [(gr.Blocks, title, elem_id), ...]: new tabs
APP_STARTED = "on_app_started"    # (demo: gr.Blocks | None, app: FastAPI): after launch, e.g. to add routes
MODEL_LOADED = "on_model_loaded"  # (model: LoadedCheckpoint): a checkpoint was loaded from disk
IMAGE_SAVED = "on_image_saved"    # (saved: ImageSaved): an image was written to the outputs folder
NAMES = (UI_TABS, APP_STARTED, MODEL_LOADED, IMAGE_SAVED)


@dataclass
class ImageSaved:
    """What on_image_saved callbacks get."""
    image: Any          # PIL.Image
    path: Path
    infotext: str
    tab: str            # "txt2img", "gan" ...
    owner: str | None = None  # whose job made it (modules/owners.py): "user:<name>" for a logged-in user


@dataclass
class Callback:
    name: str
    fn: Callable
    extension: Extension


class Callbacks:
    def __init__(self):
        self._registered: dict[str, list[Callback]] = {name: [] for name in NAMES}

    def add(self, name: str, fn: Callable, extension: Extension) -> None:
        if name not in self._registered:
            raise ValueError(f"unknown callback {name!r}: one of {', '.join(NAMES)}")
        if not callable(fn):
            raise TypeError(f"{name} needs a function, got {fn!r}")
        self._registered[name].append(Callback(name, fn, extension))

    def registered(self, name: str) -> list[Callback]:
        return [c for c in self._registered[name] if c.extension.enabled]

    def run(self, name: str, *args) -> list[tuple[Callback, Any]]:
        """Call every enabled callback of `name`; (callback, result) of those that did not raise."""
        results = []
        for callback in self.registered(name):
            try:
                results.append((callback, callback.fn(*args)))
            except Exception as e:  # noqa: BLE001 - an extension's bug must not stop the app or the job
                callback.extension.add_error(name, e, traceback.format_exc())
        return results


# While a script file is imported, the extension set and the extension it belongs to.
_loading = threading.local()


class loading_into:
    """Context manager: registrations made inside go to `callbacks`, credited to `extension`."""

    def __init__(self, callbacks: Callbacks, extension: Extension):
        self.target = (callbacks, extension)

    def __enter__(self):
        self.previous = getattr(_loading, "target", None)
        _loading.target = self.target

    def __exit__(self, *exc):
        _loading.target = self.previous


def _register(name: str, fn: Callable) -> Callable:
    target = getattr(_loading, "target", None)
    if target is None:
        raise UserError(f"{name}: register callbacks when your script is imported (at the top level of "
                        "a file in extensions/<name>/scripts/), not later")
    callbacks, extension = target
    callbacks.add(name, fn, extension)
    return fn


def on_ui_tabs(fn: Callable) -> Callable:
    """fn() returns a list of (gr.Blocks, tab title, elem_id); each becomes a tab after the built-in ones."""
    return _register(UI_TABS, fn)


def on_app_started(fn: Callable) -> Callable:
    """fn(demo, app) runs once the server is up: `app` is the FastAPI app (add routes to it); demo is
    the gr.Blocks, or None with --nowebui."""
    return _register(APP_STARTED, fn)


def on_model_loaded(fn: Callable) -> Callable:
    """fn(model) runs after a checkpoint is loaded from disk (not when it comes back from the cache)."""
    return _register(MODEL_LOADED, fn)


def on_image_saved(fn: Callable) -> Callable:
    """fn(saved: ImageSaved) runs after an image (or a script's grid) is written to the outputs folder."""
    return _register(IMAGE_SAVED, fn)
