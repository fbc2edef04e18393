"""Start-up clean-up of what a crash (kill -9, power loss, full disk) leaves behind in our folders.

- Temp files of atomic writes (modules/atomic_files.py): ".saving-<pid>-*" beside an output or model file,
  ".config-<pid>-*" and ".extensions-<pid>-*" beside the settings files. One whose writer is still running
  (another instance of the app on the same folders) is kept; one without a pid is from an older version.
- Empty numbered outputs ("00012-1-2.gif", 0 bytes): older versions claimed a video's number with an
  empty file before writing it, so a crash left a final-named empty file. Nothing writes them now.

The walk never follows symlinks and is bounded in depth and count: outputs may be large or point anywhere."""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

TEMP_PREFIXES = (".saving-", ".config-", ".extensions-")
_WRITER_PID = re.compile(r"^\.(?:saving|config|extensions)-(\d+)-")
_NUMBERED = re.compile(r"^\d{5}-")
MAX_DEPTH = 6  # outputs/<user>/<mode>-images/<date>/<file> is 4 deep
MAX_ENTRIES = 500_000


def writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # another user's process (alive); a nonsense pid: not a writer
    return True


def is_temp_leftover(name: str) -> bool:
    if not name.startswith(TEMP_PREFIXES):
        return False
    match = _WRITER_PID.match(name)
    return match is None or not writer_alive(int(match.group(1)))


def _is_empty_output(entry: os.DirEntry) -> bool:
    return _NUMBERED.match(entry.name) is not None and entry.stat(follow_symlinks=False).st_size == 0


def _files(folder: Path, depth: int) -> Iterator[os.DirEntry]:
    pending, seen = [(folder, 0)], 0
    while pending:
        current, level = pending.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    seen += 1
                    if seen > MAX_ENTRIES:
                        log.warning("start-up clean-up stopped after %d entries under %s", MAX_ENTRIES, folder.name)
                        return
                    if entry.is_dir(follow_symlinks=False):
                        if level < depth and not entry.name.startswith("."):
                            pending.append((Path(entry.path), level + 1))
                    elif entry.is_file(follow_symlinks=False):
                        yield entry
        except OSError:
            continue


def remove_leftovers(outputs: Path | None, models: Path | None = None,
                     settings_folders: Iterable[Path] = ()) -> list[Path]:
    """Remove leftovers; returns what was removed. Finished files are never touched."""
    removed: list[Path] = []
    plan = [(outputs, MAX_DEPTH, True), (models, MAX_DEPTH, False), *((f, 0, False) for f in settings_folders)]
    for folder, depth, empty_outputs_too in plan:
        if folder is None or not Path(folder).is_dir():
            continue
        for entry in _files(Path(folder), depth):
            if is_temp_leftover(entry.name) or (empty_outputs_too and _is_empty_output(entry)):
                try:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
                except OSError as e:
                    log.warning("could not remove the leftover %s: %s", entry.name, e.strerror or e)
    if removed:
        log.info("removed %d file(s) left half-written by an earlier run: %s", len(removed),
                 ", ".join(p.name for p in removed[:10]) + (" ..." if len(removed) > 10 else ""))
    return removed
