"""--medvram (model offload) and --lowvram (group offload) go through diffusers' hooks and change
where weights live, never the image."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.backend import Backend, BackendConfig
from modules.devices import DeviceConfig, device_config
from modules.capabilities.txt2img.request import Txt2ImgRequest


def generate(models_dir, tmp_path, offload: str) -> np.ndarray:
    # On this CPU machine the "device" is the CPU; the hooks still run and move weights between calls.
    devices = DeviceConfig(torch.device("cpu"), torch.float32, torch.float32, offload)
    backend = Backend(BackendConfig(models_dir=models_dir, outdir=tmp_path / offload, cache_dir=tmp_path / "cache",
                                    devices=devices, offline=True))
    result = backend.txt2img(Txt2ImgRequest(prompt="a red circle", steps=3, width=64, height=64, seed=3,
                                            checkpoint="tiny-sdxl", save_images=False))
    return np.asarray(result.images[0], dtype=np.int16)


@pytest.mark.parametrize("offload", ["model", "sequential"])
def test_offload_modes_give_the_same_image(models_dir, tmp_path, offload):
    plain = generate(models_dir, tmp_path, "none")
    assert np.abs(generate(models_dir, tmp_path, offload) - plain).max() <= 1


def test_offload_flags_pick_the_mode():
    assert device_config("cpu", medvram=True).offload == "none"  # nothing to offload to on a CPU
    from modules import cmd_args

    args = cmd_args.parse_args(["--lowvram"])
    assert args.lowvram and not args.medvram
    with pytest.raises(SystemExit):
        cmd_args.parse_args(["--lowvram", "--medvram"])
