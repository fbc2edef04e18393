"""The files of an extra-network folder (models/Lora, models/embeddings): names as a prompt writes them,
with the preview picture a user put beside each one. The listing is cached per folder and redone only when
a folder's modification time changes, so a panel over 2000 files stays fast."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from modules.models import folder_walk

LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt")
EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")  # .pt/.bin read with torch.load(weights_only=True)
PREVIEW_SUFFIXES = (".preview.png", ".png", ".preview.jpg", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class NetworkFile:
    name: str  # the file's stem: what `<lora:name:1>` or an embedding's prompt word uses
    path: Path
    folder: Path  # the scanned folder it was found in
    mtime: float
    size: int
    preview: Path | None  # `name.preview.png` (or .png/.jpg/.webp) beside the file, if there is one

    @property
    def relative(self) -> str:
        return self.path.relative_to(self.folder).as_posix()


class NetworkFolder:
    """The files with `suffixes` under some folders; a name found in two places is the first folder's."""

    def __init__(self, folders: list[Path], suffixes: tuple[str, ...]):
        self.folders = [Path(f) for f in folders]
        self.suffixes = suffixes
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._files: list[NetworkFile] = []

    def _folder_stamp(self) -> tuple:
        stamp = []
        for folder in self.folders:
            for path, is_folder in [(folder, True), *folder_walk.walk(folder)] if folder.is_dir() else []:
                if is_folder:
                    try:
                        stamp.append((str(path), os.stat(path).st_mtime_ns))
                    except OSError:
                        pass
        return tuple(stamp)

    def refresh(self) -> list[NetworkFile]:
        with self._lock:
            self._stamp = None
        return self.files()

    def files(self) -> list[NetworkFile]:
        """Every file, sorted by name (case-insensitive). Rescanned only when a folder changed."""
        stamp = self._folder_stamp()
        with self._lock:
            if stamp != self._stamp:
                self._files, self._stamp = self._scan(), stamp
            return list(self._files)

    def find(self, name: str) -> NetworkFile | None:
        key = name.strip().lower()
        for f in self.files():
            if key in (f.name.lower(), f.relative.lower()):
                return f
        return None

    def _scan(self) -> list[NetworkFile]:
        found: dict[str, NetworkFile] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for path in folder_walk.files(folder, self.suffixes):
                try:
                    st = path.stat()
                except OSError:
                    continue
                found.setdefault(path.stem.lower(), NetworkFile(
                    path.stem, path, folder, st.st_mtime, st.st_size, _preview(path)))
        return sorted(found.values(), key=lambda f: f.name.lower())


def _preview(path: Path) -> Path | None:
    base = path.with_suffix("")
    for suffix in PREVIEW_SUFFIXES:
        candidate = base.parent / (base.name + suffix)
        if candidate != path and candidate.is_file():
            return candidate
    return None
