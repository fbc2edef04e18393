"""What a client may see of the server's folders: names relative to the app's folders, never absolute paths.

Answers (API JSON, UI messages, job errors) name files as "models/Stable-diffusion/x.safetensors" or
"outputs/txt2img-images/2026-01-02/00000-1.png". An absolute path would tell a visitor the account name
and the disk's layout, and would name targets for other attacks. The app's folders are known here by
the label a user knows them by; a path outside all of them is shown by its file name alone."""
from __future__ import annotations

import re
import tempfile
import threading
from pathlib import Path

from modules import paths

_lock = threading.Lock()
_roots: dict[str, str] = {}  # absolute folder (no trailing slash) -> its label ("" for the app's own folder)
# An absolute path in free text: starts after a space, quote, bracket, '=' or ':' plus space (not in a URL).
_ABSOLUTE = re.compile(r"(?<![\w./~:-])(?:/[\w.@+-]+)+/?")


def add_folder(folder: str | Path, label: str) -> None:
    """Show paths under `folder` as `label`/relative (the resolved folder too, for symlinked setups)."""
    folder = Path(folder).expanduser()
    with _lock:
        for form in {str(folder.absolute()), str(folder.resolve())}:
            if form != "/":
                _roots[form.rstrip("/")] = label


def _defaults() -> None:
    add_folder(tempfile.gettempdir(), "tmp")
    add_folder(Path.home(), "~")
    add_folder(paths.APP_ROOT, "")
    for folder, label in ((paths.MODELS_DIR, "models"), (paths.OUTPUTS_DIR, "outputs"), (paths.CACHE_DIR, "cache"),
                          (paths.EXTENSIONS_DIR, "extensions")):
        add_folder(folder, label)


_defaults()


def _by_length() -> list[tuple[str, str]]:
    with _lock:
        return sorted(_roots.items(), key=lambda item: len(item[0]), reverse=True)


def shown(path: str | Path) -> str:
    """How a client sees a server path: relative to the most specific known folder, else the name alone."""
    text = str(path)
    if not text.startswith(("/", "~")):
        return Path(text).as_posix()
    for root, label in _by_length():
        if text == root or text.startswith(root + "/"):
            rest = text[len(root):].lstrip("/")
            return "/".join(part for part in (label, rest) if part) or "."
    return Path(text).name


def scrub(text: str) -> str:
    """`text` (a message) with every absolute path in it replaced by what `shown` makes of it: the known
    folders first (their names may have spaces), then any other absolute path by its file name."""
    if "/" not in text:
        return text
    for root, label in _by_length():
        if root in text:
            text = re.sub(r"(?<![\w.~-])" + re.escape(root) + r"(/|(?![\w.@+-]))",
                          lambda m, label=label: (label + m.group(1)) if label else ("" if m.group(1) else "."), text)
    return _ABSOLUTE.sub(lambda m: Path(m.group(0)).name, text)
