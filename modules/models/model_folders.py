"""The one shape every kind of model file shares: scan some folders for files with given endings, list each
once, find one by the name a request gives. VAE files, component files, upscalers, face restorers and the
LPIPS weights are each this, with their own folders, endings and naming (their *_files.py); reading a file's
weights is theirs too, and keeping what was read is the model cache's (the manager loads through it).

A name is only ever compared with the files found: nothing a request names is opened as a path of its own."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modules.errors import ModelNotFound
from modules.models import folder_walk


@dataclass(frozen=True)
class ModelFile:
    path: Path
    name: str  # as listed and asked for: relative to its folder ("ae.safetensors", "sub/x.pth"), or its stem

    @property
    def stamp(self) -> tuple:
        """(real path, size, mtime): a file replaced in place is another version, cached apart."""
        stat = self.path.stat()
        return (str(folder_walk.real_path(self.path)), stat.st_size, stat.st_mtime_ns)

    @property
    def size(self) -> int:
        return self.path.stat().st_size


class ModelFolders:
    """The model files of `folders` (earlier folders first): each file once (by its real path, so links do
    not list it twice) and each name once (a second file of the same name could never be picked), sorted by
    name. `stem_names`: listed without the extension and folder (A1111's upscaler names), else by the path
    relative to its folder. `what` names the kind in ModelNotFound ("upscaler", "VAE file")."""

    def __init__(self, folders, suffixes: tuple[str, ...], what: str, stem_names: bool = False):
        self.folders = [Path(folder) for folder in folders]
        self.suffixes = suffixes
        self.what = what
        self.stem_names = stem_names

    def scan(self) -> list[ModelFile]:
        by_name: dict[str, ModelFile] = {}
        seen: set[Path] = set()
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for path in folder_walk.files(folder, self.suffixes):  # no symlink loops, bounded
                real = folder_walk.real_path(path)
                name = path.stem if self.stem_names else path.relative_to(folder).as_posix()
                if real not in seen and name not in by_name:
                    seen.add(real)
                    by_name[name] = ModelFile(path, name)
        return sorted(by_name.values(), key=lambda f: f.name.lower())

    def names(self) -> list[str]:
        return [f.name for f in self.scan()]

    def find(self, wanted: str) -> ModelFile:
        """The file listed as `wanted`, else the one whose file name without extension is that, else the one whose
        file name is the last part of `wanted` (clients send full paths: only the file name is used).
        ModelNotFound names `wanted` when none is."""
        files = self.scan()
        base = wanted.replace("\\", "/").rsplit("/", 1)[-1]
        for matches in (lambda f: f.name == wanted, lambda f: Path(f.name).stem == wanted,
                        lambda f: f.path.name == base):
            for f in files:
                if matches(f):
                    return f
        raise ModelNotFound(self.what, wanted)
