"""LoRAs on SD 3/3.5 and FLUX.1 (tiny random-weight models) in diffusers'/PEFT's layout: the same prompt tags and
adapters as SD's, through each pipeline's own LoRA loader onto the cached transformer; the picture changes by the
weight and the transformer's own weights come back bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.capabilities.txt2img.request import Txt2ImgRequest
from modules.generation.infotext import parse_infotext
from tests import tiny_flow_models
from tests.lora_fixtures import make_transformer_lora

CHECKPOINTS = ["tiny-flux-dev", "tiny-sd3"]


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    models = tmp_path_factory.mktemp("flow-lora-models")
    sd = models / "Stable-diffusion"
    flux = tiny_flow_models.make_tiny_flux(sd / "tiny-flux-dev")
    sd3 = tiny_flow_models.make_tiny_sd3(sd / "tiny-sd3")
    make_transformer_lora(flux, models / "Lora" / "tiny-flux-dev-style.safetensors", seed=1, strength=1.0)
    make_transformer_lora(sd3, models / "Lora" / "tiny-sd3-style.safetensors", seed=2, strength=1.0)
    for sub in ("VAE", "Latent", "GAN", "text_encoder"):
        (models / sub).mkdir(exist_ok=True)
    work = tmp_path_factory.mktemp("flow-lora")
    return Backend(BackendConfig(models_dir=models, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


def generate(backend, checkpoint: str, prompt: str):
    result = backend.txt2img(Txt2ImgRequest(prompt=prompt, steps=2, width=64, height=64, seed=1, sampler="Euler",
                                            cfg_scale=1.0 if "flux" in checkpoint else 4.0, checkpoint=checkpoint,
                                            save_images=False))
    return np.asarray(result.images[0], dtype=np.int16), parse_infotext(result.infotexts[0])


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_a_lora_changes_the_picture_and_goes_away_bit_for_bit(backend, checkpoint):
    model = backend.manager.load(checkpoint)
    transformer = model.pipe.transformer
    before = {name: t.detach().clone() for name, t in transformer.state_dict().items()}
    base, _ = generate(backend, checkpoint, "a red circle")
    styled, info = generate(backend, checkpoint, f"a red circle <lora:{checkpoint}-style:1>")
    zero, _ = generate(backend, checkpoint, f"a red circle <lora:{checkpoint}-style:0>")
    assert np.abs(styled - base).mean() > 2 and np.array_equal(zero, base)
    assert info["Lora hashes"].startswith(f"{checkpoint}-style: ")
    assert np.array_equal(generate(backend, checkpoint, "a red circle")[0], base)
    backend.manager.loras.remove_all(model.pipe)
    after = transformer.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[n], before[n]) for n in before)
