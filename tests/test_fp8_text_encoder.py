"""fp8 text encoder files (ComfyUI's t5xxl_fp8_e4m3fn.safetensors in models/text_encoder): read and kept in fp8,
cast layer by layer to the compute dtype as an fp8 denoiser is (modules/models/fp8_storage.py); the picture is
nearly the full-precision T5's, the Models tab's rows show the fp8 storage and its smaller size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests import tiny_flow_models

CLOSE_PSNR = 30.0  # dB, as tests/test_low_memory.py: the same picture, slightly different


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    models = tmp_path_factory.mktemp("fp8-t5") / "models"
    flux = tiny_flow_models.make_tiny_flux(models / "Stable-diffusion" / "tiny-flux-dev")
    files = tiny_flow_models.make_flux_component_files(flux, models, name="flux1-tiny")
    t5 = load_file(str(files["t5xxl"]))
    save_file({k: v.to(torch.float8_e4m3fn) if v.ndim == 2 else v for k, v in t5.items()},
              str(models / "text_encoder" / "t5xxl_fp8_e4m3fn.safetensors"))
    for sub in ("VAE", "Latent", "GAN"):
        (models / sub).mkdir(exist_ok=True)
    work = tmp_path_factory.mktemp("fp8-t5-backend")
    return Backend(BackendConfig(models_dir=models, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


def generate(backend, t5: str) -> np.ndarray:
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    modules = ["flux1-tiny-ae.safetensors", "flux1-tiny-clip_l.safetensors", t5]
    result = backend.txt2img(Txt2ImgRequest(prompt="a red circle on a white background", steps=3, width=64,
                                            height=64, seed=11, sampler="Euler", cfg_scale=1.0, save_images=False,
                                            checkpoint="flux1-tiny", forge_additional_modules=modules))
    return np.asarray(result.images[0], dtype=np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def t5_rows(backend) -> list[dict]:
    return [c for row in backend.cached_models() for c in row["components"] if c["name"] == "text_encoder_2"]


def test_an_fp8_t5_file_stays_fp8_and_makes_nearly_the_full_precision_picture(backend):
    full = generate(backend, "flux1-tiny-t5xxl.safetensors")
    fp8 = generate(backend, "t5xxl_fp8_e4m3fn.safetensors")
    assert np.array_equal(fp8, generate(backend, "t5xxl_fp8_e4m3fn.safetensors"))  # the seed reproduces
    assert not np.array_equal(fp8, full) and psnr(fp8, full) > CLOSE_PSNR
    rows = {row["dtype"].split("+")[0]: row for row in t5_rows(backend)}
    assert set(rows) == {"float32", "float8_e4m3fn"}, rows  # the Models tab: as stored
    assert rows["float8_e4m3fn"]["bytes"] < rows["float32"]["bytes"] * 0.4  # 1 byte a weight against 4, wo aside
    from modules.models.refs import CHECKPOINT, ModelRef

    modules = ("flux1-tiny-ae.safetensors", "flux1-tiny-clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors")
    with backend.manager.use(ModelRef(CHECKPOINT, "flux1-tiny", modules)) as model:
        t5 = model.pipe.text_encoder_2
        block = t5.encoder.block[0]
        assert block.layer[0].SelfAttention.q.weight.dtype == torch.float8_e4m3fn
        # T5 casts the feed-forward output's input to that layer's weight dtype: it computes in the compute dtype
        assert block.layer[1].DenseReluDense.wo.weight.dtype == torch.float32
        assert model.pipe.transformer.dtype == torch.float32  # only the file's own component is fp8
