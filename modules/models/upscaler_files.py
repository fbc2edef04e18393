"""Upscaler model files (ESRGAN, Real-ESRGAN, SwinIR, DAT, ... anything spandrel recognises) in A1111's
folders models/ESRGAN, models/RealESRGAN and models/SwinIR.

Files are read as weights only: .safetensors, or .pth/.pt/.ckpt pickles through torch's weights-only
unpickler (modules/models/pickles.py), so a pickle that would run code is refused by name and never runs.
The state dict alone goes to spandrel, which tells the architecture from the weights' names and shapes.
Only the model manager loads them (`PipelineManager.upscaler_model`), so they are cached like every weight."""
from __future__ import annotations

from pathlib import Path

import torch

from modules.errors import BadModelFile, UserError
from modules.models.model_folders import ModelFolders

FOLDERS = ("ESRGAN", "RealESRGAN", "SwinIR")  # below the models folder, as A1111 has them
SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
UPSCALER_PURPOSES = ("SR", "Restoration")  # spandrel's: super-resolution, and 1x restorers (not faces, inpainting)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors; BadModelFile (naming the file) for anything else, a code-running pickle included."""
    from modules.models.pickles import is_safetensors_file, load_pickle_state_dict

    if not path.is_file():
        raise BadModelFile(path, "file not found")
    if path.suffix.lower() == ".safetensors":
        if not is_safetensors_file(path):
            raise BadModelFile(path, "not a .safetensors file (a renamed pickle?)")
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except Exception as e:  # noqa: BLE001 - safetensors raises several types for damaged files
            raise BadModelFile(path, f"not a readable .safetensors file ({str(e)[:120]})") from None
    state = load_pickle_state_dict(path)  # weights only: refuses a pickle that needs code
    for wrapper in ("params_ema", "params"):  # Real-ESRGAN's and SwinIR's training checkpoints nest them
        inner = _inner(path, wrapper)
        if inner:
            return inner
    if not state:
        raise BadModelFile(path, "no weights in this file")
    return state


def _inner(path: Path, key: str) -> dict | None:
    data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # already judged safe above
    if isinstance(data, dict) and isinstance(data.get(key), dict):
        return {k: v for k, v in data[key].items() if isinstance(v, torch.Tensor)}
    return None


def spandrel_model(path: Path, needs: str, expected: str):
    """The spandrel model (eval, CPU, float32) of a weights file, its purpose not yet checked. UserError saying
    what `needs` spandrel when it is not installed; BadModelFile when it knows no `expected` with these weights."""
    from modules.models.spandrel_import import import_spandrel

    state = read_state_dict(path)
    try:
        spandrel = import_spandrel()
    except ModuleNotFoundError:
        raise UserError(f"{needs} the spandrel package: pip install --no-deps -r requirements-no-deps.txt") from None
    try:
        model = spandrel.ModelLoader().load_from_state_dict(state)
    except Exception as e:  # noqa: BLE001 - spandrel raises UnsupportedModelError and shape errors alike
        raise BadModelFile(path, f"not {expected} spandrel knows ({str(e)[:160]})") from None
    return model.eval()


def load_upscaler(path: Path):
    """A spandrel ImageModelDescriptor (eval, CPU, float32) for an upscaler file."""
    from modules.models.spandrel_import import import_spandrel

    model = spandrel_model(path, "model upscalers need", "an upscaler architecture")
    if not isinstance(model, import_spandrel().ImageModelDescriptor) or model.purpose not in UPSCALER_PURPOSES:
        raise BadModelFile(path, f"this is a {model.architecture.name} model for {model.purpose}, not an upscaler")
    if model.input_channels != 3 or model.output_channels != 3:
        raise BadModelFile(path, f"needs {model.input_channels} input channels; only RGB upscalers are supported")
    return model


class UpscalerFiles(ModelFolders):
    """The upscaler files of some folders, by their stems (what A1111 lists and requests name). Loaded ones are
    kept in the model manager's cache, within its budget (PipelineManager.upscaler_model)."""

    def __init__(self, folders: list[Path]):
        super().__init__(folders, SUFFIXES, "upscaler", stem_names=True)
