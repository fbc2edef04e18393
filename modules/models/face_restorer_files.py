"""Face restorer model files in A1111's folder models/GFPGAN, read as weights only and loaded through spandrel.

Only GFPGAN (v1.3/v1.4 "clean" architecture, what A1111 downloads as GFPGANv1.4.pth) runs here: CodeFormer
is not in spandrel's main registry (it lives in spandrel_extra_arches, under a non-commercial licence), and
RestoreFormer needs torchvision, which this server does not install (modules/models/spandrel_import.py).
A file in the folder that is another architecture is refused by name when a job asks for it."""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from modules.errors import BadModelFile, UserError
from modules.models import folder_walk
from modules.models.upscaler_files import SUFFIXES, read_state_dict

FOLDER = "GFPGAN"     # below the models folder, as A1111 has it
RESTORER = "GFPGAN"   # the restorer's name, as A1111 lists it and writes it in the infotext
MAX_LOADED = 1        # GFPGAN v1.4 is 350 MB; a job uses one


@dataclass(frozen=True)
class FaceRestorerFile:
    path: Path
    name: str  # the restorer's name (GFPGAN), not the file's

    @property
    def stamp(self) -> tuple:
        stat = self.path.stat()
        return (str(folder_walk.real_path(self.path)), stat.st_size, stat.st_mtime_ns)


def load_face_restorer(path: Path):
    """A spandrel ImageModelDescriptor (eval, CPU, float32) for a GFPGAN file."""
    from modules.models.spandrel_import import import_spandrel

    state = read_state_dict(path)
    try:
        spandrel = import_spandrel()
    except ModuleNotFoundError:
        raise UserError("face restoration needs the spandrel package: "
                        "pip install --no-deps -r requirements-no-deps.txt") from None
    try:
        model = spandrel.ModelLoader().load_from_state_dict(state)
    except Exception as e:  # noqa: BLE001 - spandrel raises UnsupportedModelError and shape errors alike
        raise BadModelFile(path, f"not a GFPGAN model spandrel knows ({str(e)[:160]})") from None
    if model.architecture.id != "GFPGAN":
        raise BadModelFile(path, f"this is a {model.architecture.name} model for {model.purpose}; "
                                 "only GFPGAN face restorers are supported")
    return model.eval()


class FaceRestorerFiles:
    """The face restorer files of models/GFPGAN (the first file by name is the one used, as in A1111)."""

    def __init__(self, folders: list[Path]):
        self.folders = list(folders)
        self._loaded: OrderedDict[tuple, object] = OrderedDict()
        self._lock = threading.Lock()

    def scan(self) -> list[FaceRestorerFile]:
        found = []
        for folder in self.folders:
            if folder.is_dir():
                found += sorted(folder_walk.files(folder, SUFFIXES), key=lambda p: p.name.lower())
        return [FaceRestorerFile(path, RESTORER) for path in found]

    def available(self) -> list[str]:
        """The restorers a job may ask for: GFPGAN when its folder holds a file."""
        return [RESTORER] if self.scan() else []

    def find(self, name: str) -> FaceRestorerFile | None:
        files = [f for f in self.scan() if f.name == name]
        return files[0] if files else None

    def load(self, restorer: FaceRestorerFile, device: torch.device):
        key = (*restorer.stamp, str(device))
        with self._lock:
            model = self._loaded.get(key)
            if model is None:
                self._loaded.clear()  # one at a time: the old one goes before the new one is read
                model = load_face_restorer(restorer.path).to(device)
                self._loaded[key] = model
            self._loaded.move_to_end(key)
            return model
