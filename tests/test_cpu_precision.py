"""--precision auto on a CPU: a path is picked once per machine and remembered, and the fast path still draws
the right pictures (correctness, not speed: bench/txt2img.py measures speed)."""
import json
import math

import numpy as np
import pytest
import torch

from modules import cpu_speed
from modules.backend import Backend, BackendConfig
from modules.capabilities.txt2img import TXT2IMG, Txt2ImgRequest
from modules.devices import device_config
from modules.paths import MODELS_DIR
from modules.zoo import shapes
from tests.test_zoo_builtin_txt2img import dominant_foreground_colour


def psnr(a, b) -> float:
    mse = float(((np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) ** 2).mean())
    return 10 * math.log10(255**2 / mse) if mse else float("inf")


def test_auto_picks_a_path_once_and_remembers_it_per_machine(tmp_path, monkeypatch):
    devices = device_config("cpu", precision="auto", cache_dir=tmp_path)
    remembered = json.loads((tmp_path / cpu_speed.CACHE_NAME).read_text())
    key = f"{cpu_speed.cpu_model()} | torch {torch.__version__}"
    chosen = remembered[key]["chosen"]
    assert chosen in cpu_speed.PATHS
    assert devices.dtype == (torch.float32 if chosen == "fp32" else torch.bfloat16)
    assert devices.vae_dtype == torch.float32  # the VAE's output is the picture: kept in fp32
    if not cpu_speed.has_native_bf16():
        assert chosen == "fp32"

    def not_again():
        raise AssertionError("measured again although remembered")
    monkeypatch.setattr(cpu_speed, "measure", not_again)
    assert device_config("cpu", precision="auto", cache_dir=tmp_path) == devices
    (tmp_path / cpu_speed.CACHE_NAME).write_text("{not json")  # a damaged file: measured again, not an error
    monkeypatch.undo()
    assert device_config("cpu", precision="auto", cache_dir=tmp_path).dtype in (torch.float32, torch.bfloat16)


def test_bf16_is_never_chosen_without_native_instructions(monkeypatch):
    monkeypatch.setattr(cpu_speed, "has_native_bf16", lambda: False)
    assert cpu_speed.measure()["chosen"] == "fp32"
    assert device_config("cpu", precision="auto", cache_dir=None).dtype == torch.float32


def _backend(models_dir, work, devices):
    return Backend(BackendConfig(models_dir=models_dir, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=devices, offline=True))


@pytest.mark.parametrize("path", ["auto", "bf16-channels-last"])
def test_the_fast_path_draws_the_built_in_models_red_circle(tmp_path, monkeypatch, path):
    if not (MODELS_DIR / "Stable-diffusion" / "zoo-shapes" / "model_index.json").exists():
        pytest.skip("built-in txt2img weights are not shipped")
    if path != "auto":  # the other path too, whichever this machine measured faster
        monkeypatch.setattr(cpu_speed, "fastest_path", lambda cache_dir: path)
    devices = device_config("cpu", precision="auto", cache_dir=tmp_path / "cache")
    request = Txt2ImgRequest(prompt="a red circle on a white background", negative_prompt="", steps=20, width=32,
                             height=32, seed=1, sampler="Euler a", cfg_scale=5, checkpoint="zoo-shapes",
                             save_images=False)
    fast_backend = _backend(MODELS_DIR, tmp_path / "fast", devices)
    image = np.asarray(fast_backend.run(TXT2IMG, request).images[0])
    fp32 = np.asarray(_backend(MODELS_DIR, tmp_path / "fp32", device_config("cpu")).run(TXT2IMG, request).images[0])
    assert dominant_foreground_colour(image.astype(float), "white") == "red"
    red = np.abs(image.astype(float) - shapes.COLOURS["red"]).sum(-1) < 150
    ys, xs = np.nonzero(red)
    assert red.sum() >= 20
    # Round: the red pixels fill about π/4 of their bounding box (a square would fill all of it).
    fill = red.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1))
    assert 0.6 < fill < 0.92, fill
    assert psnr(image, fp32) > 25


def test_bf16_weights_stay_close_to_fp32_on_a_tiny_model(backend, models_dir, tmp_path, small_request):
    bf16 = _backend(models_dir, tmp_path, device_config("cpu", precision="bf16", no_half_vae=True))
    request = small_request(steps=8, save_images=False)
    fast = bf16.run(TXT2IMG, request).images[0]
    reference = backend.run(TXT2IMG, request).images[0]
    with bf16.manager.use("tiny-sd15") as model:
        assert model.pipe.unet.dtype == torch.bfloat16 and model.pipe.vae.dtype == torch.float32
    assert psnr(fast, reference) > 25
