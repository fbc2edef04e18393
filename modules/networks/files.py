"""The files of an extra-network folder (models/Lora, models/embeddings): names as a prompt writes them,
with the preview picture a user put beside each one. The listing is cached per folder and redone only when
a folder's modification time changes, so a panel over 2000 files stays fast."""
from __future__ import annotations

import os
import stat
import threading
from collections import defaultdict
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
        self._subfolders: list[Path] = []  # found by the last scan

    def _folder_stamp(self, subfolders: list[Path]) -> tuple:
        """The modification times of the roots and the subfolders the last scan found: a file added, removed or
        renamed changes its folder's time, a new subfolder its parent's. A few stats, not one per file."""
        stamp = []
        for path in [*self.folders, *subfolders]:
            try:
                stamp.append((str(path), os.stat(path).st_mtime_ns))
            except OSError:
                stamp.append((str(path), None))
        return tuple(stamp)

    def refresh(self) -> list[NetworkFile]:
        with self._lock:
            self._stamp = None
        return self.files()

    def files(self) -> list[NetworkFile]:
        """Every file, sorted by name (case-insensitive). Rescanned only when a folder changed."""
        with self._lock:
            if self._stamp is None or self._folder_stamp(self._subfolders) != self._stamp:
                self._files, self._subfolders = self._scan()
                self._stamp = self._folder_stamp(self._subfolders)
            return list(self._files)

    def find(self, name: str) -> NetworkFile | None:
        key = name.strip().lower()
        for f in self.files():
            if key in (f.name.lower(), f.relative.lower()):
                return f
        return None

    def _scan(self) -> tuple[list[NetworkFile], list[Path]]:
        """The files, and the subfolders walked. One walk per root; previews are found among the names listed."""
        found: dict[str, NetworkFile] = {}
        subfolders: list[Path] = []
        for folder in self.folders:
            if not folder.is_dir():
                continue
            names: dict[Path, set[str]] = defaultdict(set)
            candidates: list[Path] = []
            for path, is_folder in folder_walk.walk(folder):
                if is_folder:
                    subfolders.append(path)
                    continue
                names[path.parent].add(path.name)
                if path.suffix.lower() in self.suffixes:
                    candidates.append(path)
            for path in sorted(candidates):
                try:
                    st = path.stat()
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    found.setdefault(path.stem.lower(), NetworkFile(
                        path.stem, path, folder, st.st_mtime, st.st_size, _preview(path, names[path.parent])))
        return sorted(found.values(), key=lambda f: f.name.lower()), subfolders


def _preview(path: Path, siblings: set[str]) -> Path | None:
    """`name.preview.png` (or another picture named like the file) among the names in the file's folder."""
    for suffix in PREVIEW_SUFFIXES:
        name = path.stem + suffix
        if name != path.name and name in siblings:
            return path.parent / name
    return None
