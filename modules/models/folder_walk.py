"""Walking a models folder without hanging: symlinked folders are followed (users link shared model
folders in) but a folder is never entered twice, so links to `.` or to a parent end at once; the walk
stops at a depth and a count no real models folder reaches, and says so in the log."""
from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

MAX_DEPTH = 16  # folders below the root
MAX_ENTRIES = 100_000  # files and folders seen, per walk


def walk(root: Path, descend: Callable[[Path], bool] = lambda folder: True) -> Iterator[tuple[Path, bool]]:
    """(path, is_folder) for everything under `root`, each folder's entries in name order. A folder
    is entered only when `descend(folder)` says so (it is asked after the folder was yielded)."""
    seen = {_identity(root)}
    if None in seen:
        return
    pending = deque([(root, 0)])
    count = 0
    while pending:
        folder, depth = pending.popleft()
        try:
            entries = sorted(folder.iterdir())
        except OSError as e:
            log.warning("cannot list %s: %s", folder, e.strerror or e)
            continue
        for entry in entries:
            count += 1
            if count > MAX_ENTRIES:
                log.warning("stopped scanning %s after %d files and folders", root, MAX_ENTRIES)
                return
            is_folder = _is_folder(entry)
            yield entry, is_folder
            if not is_folder or not descend(entry):
                continue
            identity = _identity(entry)
            if identity is None or identity in seen:
                continue  # a link back to a folder already walked (a loop, or the same folder twice)
            if depth + 1 > MAX_DEPTH:
                log.warning("not scanning %s: more than %d folders deep", entry, MAX_DEPTH)
                continue
            seen.add(identity)
            pending.append((entry, depth + 1))


def files(root: Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """Every file under `root` (with one of `suffixes`, compared lower-case), sorted."""
    return sorted(path for path, is_folder in walk(root)
                  if not is_folder and (suffixes is None or path.suffix.lower() in suffixes) and _is_file(path))


def real_path(path: Path) -> Path:
    """path.resolve(), or the absolute path where the link cannot be resolved (a loop of links)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: Python < 3.13's "Symlink loop"
        return path.absolute()
    except ValueError:  # a NUL in a name a user typed: no file has it, and nothing else can be its path
        return path


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(folder)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False
