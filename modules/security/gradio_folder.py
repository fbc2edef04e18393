"""Gradio's folder for uploads and produced files: the app's own, not the machine-wide /tmp/gradio.

Gradio serves any file inside that folder through /gradio_api/file=. Its default, /tmp/gradio, is shared
by every Gradio app and every user of the machine, so other apps' uploads and images would be readable
through this app (and ours through theirs)."""
from __future__ import annotations

import os
from pathlib import Path

ENV = "GRADIO_TEMP_DIR"


def use_private_gradio_folder(cache_dir: Path) -> Path:
    """Point Gradio at <cache>/gradio (owner-only), unless GRADIO_TEMP_DIR names a folder already.
    Call before the UI is built: Gradio reads the variable when Blocks and the app are created."""
    if not os.environ.get(ENV):
        folder = Path(cache_dir) / "gradio"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.environ[ENV] = str(folder)
    return Path(os.environ[ENV])
