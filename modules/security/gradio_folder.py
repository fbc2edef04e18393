"""Gradio's folder for uploads and produced files: the app's own, not the machine-wide /tmp/gradio, and
never holding a file longer than an hour.

Gradio serves any file inside that folder through /gradio_api/file=. Its default, /tmp/gradio, is shared
by every Gradio app and every user of the machine, so other apps' uploads and images would be readable
through this app (and ours through theirs).

Each run has its own subfolder, <cache>/gradio/<pid>. Gradio's `delete_cache` (DELETE_CACHE, set on the
Blocks) removes this run's uploads and produced files an hour after they were written, and all of them
when the server stops; it keeps what the UI itself shows (components' initial values). It knows only
the files of the running process (kept in memory), so at start-up the subfolders of runs that have ended
(a crash or kill -9 included) are removed whole here."""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from modules.leftovers import writer_alive

log = logging.getLogger(__name__)

ENV = "GRADIO_TEMP_DIR"
MAX_AGE_SECONDS = 3600  # uploads and produced files older than this are removed
SWEEP_EVERY_SECONDS = 300
DELETE_CACHE = (SWEEP_EVERY_SECONDS, MAX_AGE_SECONDS)  # gr.Blocks(delete_cache=(how often, how old))


def use_private_gradio_folder(cache_dir: Path) -> Path:
    """Point Gradio at <cache>/gradio/<pid> (owner-only), unless GRADIO_TEMP_DIR names a folder already
    (that folder is then left alone: it may hold anything). Call before the UI is built: Gradio reads the
    variable when Blocks and the app are created."""
    if not os.environ.get(ENV):
        base = Path(cache_dir) / "gradio"
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        remove_ended_runs(base)
        folder = base / str(os.getpid())
        folder.mkdir(exist_ok=True, mode=0o700)
        os.environ[ENV] = str(folder)
    return Path(os.environ[ENV])


def remove_ended_runs(base: Path) -> list[Path]:
    """Remove what runs that are no longer running left in `base` (and files of older versions, which
    wrote into `base` itself)."""
    removed = []
    for entry in base.iterdir():
        if entry.name.isdigit() and writer_alive(int(entry.name)):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError as e:
            log.warning("could not remove %s of an earlier run: %s", entry.name, e.strerror or e)
    return removed
