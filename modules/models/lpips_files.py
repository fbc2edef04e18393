"""The perceptual-loss weights in models/LPIPS: a VGG16 `features` file, and optionally LPIPS's lin weights.

Read as tensors only (.safetensors, or .pth/.pt through torch's weights-only unpickler), never TorchScript:
a pickle that needs code is refused naming the file. The VGG16 weights are the first file (by name) holding
torchvision's `features.N.weight` names; LPIPS's `lin0..lin4` may be in it or in another file (lpips's vgg.pth)."""
from __future__ import annotations

import threading
from pathlib import Path

import torch

from modules.errors import BadModelFile
from modules.models import folder_walk
from modules.models.upscaler_files import read_state_dict
from modules.models.vgg_features import VggPerceptual, feature_shapes, lin_shapes

FOLDER = "LPIPS"  # below the models folder
SUFFIXES = (".safetensors", ".pth", ".pt")


def _stamp(path: Path) -> tuple:
    stat = path.stat()
    return str(folder_walk.real_path(path)), stat.st_size, stat.st_mtime_ns


def _matches(state: dict, shapes: dict) -> bool:
    return all(k in state and tuple(state[k].shape) == s for k, s in shapes.items())


class LpipsFiles:
    def __init__(self, folders: list[Path]):
        self.folders = list(folders)
        self._loaded: tuple | None = None  # (key, VggPerceptual): one at a time
        self._lock = threading.Lock()

    def scan(self) -> list[Path]:
        found = []
        for folder in self.folders:
            if folder.is_dir():
                found += sorted(folder_walk.files(folder, SUFFIXES), key=lambda p: p.name.lower())
        return found

    def present(self) -> bool:
        return bool(self.scan())

    def load(self, device: torch.device) -> VggPerceptual:
        """The perceptual network on the device; BadModelFile naming the file when it is not VGG16 weights."""
        files = self.scan()
        key = (tuple(_stamp(p) for p in files), str(device))
        with self._lock:
            if self._loaded is not None and self._loaded[0] == key:
                return self._loaded[1]
            self._loaded = None
            features = lins = None
            for path in files:
                state = read_state_dict(path)  # refuses a code-running pickle, naming the file
                has_features, has_lins = _matches(state, feature_shapes()), _matches(state, lin_shapes())
                if not (has_features or has_lins):
                    raise BadModelFile(path, "neither VGG16 features (torchvision's features.N.weight names and "
                                             "shapes) nor LPIPS lin0..lin4 weights")
                features = features or (state if has_features else None)
                lins = lins or (state if has_lins else None)
            if features is None:
                raise BadModelFile(files[0] if files else Path(self.folders[0]),
                                   "no VGG16 features file (torchvision's features.N.weight names) in the folder")
            state = {k: v.float() for k, v in features.items() if k in feature_shapes()}
            if lins is not None:
                state.update({k: lins[k].float() for k in lin_shapes()})
            model = VggPerceptual(state, use_lin=lins is not None).to(device)
            self._loaded = (key, model)
            return model
