"""Tiny random-weight upscaler files for tests: ESRGAN's architecture (RRDBNet, 4x) with 8 filters and one
block, saved as .safetensors and as a weights-only .pth; and a pickle whose unpickling would run a command."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def esrgan_state_dict(seed: int = 0, scale: int = 4) -> dict[str, torch.Tensor]:
    from modules.models.spandrel_import import import_spandrel

    import_spandrel()  # its architectures import torchvision (see spandrel_import.py)
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(seed)
    model = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=scale)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def save_safetensors(path: Path, seed: int = 0) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(esrgan_state_dict(seed), str(path))
    return path


def save_pth(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(esrgan_state_dict(seed), path)
    return path


class _RunsACommand:
    """Unpickling this runs `touch <marker>`: what a malicious .pth does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def save_code_pickle(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model.0.weight": torch.zeros(1), "payload": _RunsACommand(marker)}, path)
    return path


@pytest.fixture(scope="session")
def upscaler_models(tmp_path_factory) -> Path:
    """A models folder with tiny 4x ESRGANs in models/ESRGAN (.safetensors), models/RealESRGAN (.pth) and a
    code-running pickle in models/SwinIR; the marker file it would create is models/../pwned."""
    root = tmp_path_factory.mktemp("upscaler-models")
    save_safetensors(root / "ESRGAN" / "tiny-esrgan.safetensors")
    save_pth(root / "RealESRGAN" / "tiny-realesrgan.pth", seed=1)
    save_code_pickle(root / "SwinIR" / "evil-upscaler.pth", root.parent / "pwned")
    return root


@pytest.fixture(scope="session")
def upscaler_backend(upscaler_models, tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    work = tmp_path_factory.mktemp("upscaler-work")
    return Backend(BackendConfig(models_dir=upscaler_models, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))
