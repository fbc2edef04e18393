"""The perceptual-loss weights in models/LPIPS: a VGG16 `features` file, and optionally LPIPS's lin weights.

Read as tensors only (.safetensors, or .pth/.pt through torch's weights-only unpickler), never TorchScript:
a pickle that needs code is refused naming the file. The VGG16 weights are the first file (by name) holding
torchvision's `features.N.weight` names; LPIPS's `lin0..lin4` may be in it or in another file (lpips's vgg.pth).
Only the model manager loads them (`PipelineManager.perceptual_model`), so the network is cached like every weight."""
from __future__ import annotations

from pathlib import Path

from modules.errors import BadModelFile
from modules.models.model_folders import ModelFile, ModelFolders
from modules.models.upscaler_files import read_state_dict
from modules.models.vgg_features import VggPerceptual, feature_shapes, lin_shapes

FOLDER = "LPIPS"  # below the models folder
SUFFIXES = (".safetensors", ".pth", ".pt")


class LpipsFiles(ModelFolders):
    def __init__(self, folders: list[Path]):
        super().__init__(folders, SUFFIXES, "LPIPS weights file")

    def present(self) -> bool:
        return bool(self.scan())


def _matches(state: dict, shapes: dict) -> bool:
    return all(k in state and tuple(state[k].shape) == s for k, s in shapes.items())


def load_perceptual(files: list[ModelFile]) -> VggPerceptual:
    """The perceptual network (CPU, float32) from the files of models/LPIPS (as scanned, at least one);
    BadModelFile naming the file when one is neither VGG16 features nor lin weights, or none is features."""
    features = lins = None
    for file in files:
        state = read_state_dict(file.path)  # refuses a code-running pickle, naming the file
        has_features, has_lins = _matches(state, feature_shapes()), _matches(state, lin_shapes())
        if not (has_features or has_lins):
            raise BadModelFile(file.path, "neither VGG16 features (torchvision's features.N.weight names and "
                                          "shapes) nor LPIPS lin0..lin4 weights")
        features = features or (state if has_features else None)
        lins = lins or (state if has_lins else None)
    if features is None:
        raise BadModelFile(files[0].path, "no VGG16 features file (torchvision's features.N.weight names) in the folder")
    state = {k: v.float() for k, v in features.items() if k in feature_shapes()}
    if lins is not None:
        state.update({k: lins[k].float() for k in lin_shapes()})
    return VggPerceptual(state, use_lin=lins is not None)
