"""Face restorer model files in A1111's folder models/GFPGAN, read as weights only and loaded through spandrel.

Only GFPGAN (v1.3/v1.4 "clean" architecture, what A1111 downloads as GFPGANv1.4.pth) runs here: CodeFormer
is not in spandrel's main registry (it lives in spandrel_extra_arches, under a non-commercial licence), and
RestoreFormer needs torchvision, which this server does not install (modules/models/spandrel_import.py).
A file in the folder that is another architecture is refused by name when a job asks for it. Only the model
manager loads them (`PipelineManager.face_restorer_model`), so they are cached like every weight."""
from __future__ import annotations

from pathlib import Path

from modules.errors import BadModelFile
from modules.models.model_folders import ModelFile, ModelFolders
from modules.models.upscaler_files import SUFFIXES, spandrel_model

FOLDER = "GFPGAN"     # below the models folder, as A1111 has it
RESTORER = "GFPGAN"   # the restorer's name, as A1111 lists it and writes it in the infotext


def load_face_restorer(path: Path):
    """A spandrel ImageModelDescriptor (eval, CPU, float32) for a GFPGAN file."""
    model = spandrel_model(path, "face restoration needs", "a GFPGAN model")
    if model.architecture.id != "GFPGAN":
        raise BadModelFile(path, f"this is a {model.architecture.name} model for {model.purpose}; "
                                 "only GFPGAN face restorers are supported")
    return model


class FaceRestorerFiles(ModelFolders):
    """The face restorer files of models/GFPGAN (the first file by name is the one used, as in A1111)."""

    def __init__(self, folders: list[Path]):
        super().__init__(folders, SUFFIXES, "face restorer")

    def available(self) -> list[str]:
        """The restorers a job may ask for: GFPGAN when its folder holds a file."""
        return [RESTORER] if self.scan() else []

    def restorer(self, name: str) -> ModelFile | None:
        """The file of the restorer `name`; None when its folder holds none now."""
        files = self.scan() if name == RESTORER else []
        return files[0] if files else None
