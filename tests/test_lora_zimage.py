"""LoRAs on Z-Image (tests/tiny_zimage.py), through the same prompt tags and adapters as SD's: diffusers' Z-Image LoRA
loader on the cached transformer, in diffusers'/PEFT's and ComfyUI's layouts; the picture changes by the weight,
the transformer's own weights come back bit for bit, img2img and the API use them too."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modules.capabilities.txt2img.request import Txt2ImgRequest
from modules.errors import BadModelFile
from modules.generation.infotext import parse_infotext
from tests import tiny_zimage
from tests.lora_fixtures import make_transformer_lora


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("zimage-lora-models")
    folder = tiny_zimage.make_tiny_zimage(root / "Stable-diffusion" / "tiny-zimage")
    make_transformer_lora(folder, root / "Lora" / "zink.safetensors", seed=1, strength=1.0)
    make_transformer_lora(folder, root / "Lora" / "zcomfy.safetensors", seed=2, strength=1.0, layout="comfyui")
    return root


@pytest.fixture(scope="module")
def backend(models, tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    work = tmp_path_factory.mktemp("zimage-lora")
    return Backend(BackendConfig(models_dir=models, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


def generate(backend, prompt: str, **values):
    values = {"steps": 3, **values}
    request = Txt2ImgRequest(prompt=prompt, negative_prompt="", width=64, height=64, seed=7, sampler="Euler",
                             cfg_scale=1.0, checkpoint="tiny-zimage", save_images=False, **values)
    result = backend.txt2img(request)
    return np.asarray(result.images[0], dtype=np.int16), parse_infotext(result.infotexts[0])


def differs(a, b) -> float:
    return float(np.abs(a - b).mean())


def transformer_weights(model) -> dict[str, torch.Tensor]:
    transformer = model.pipe.transformer
    return dict([*transformer.named_parameters(), *transformer.named_buffers()])


def test_a_lora_changes_the_picture_by_its_weight(backend):
    base, info = generate(backend, "a red circle")
    inked, inked_info = generate(backend, "a red circle <lora:zink:1>")
    zero, _ = generate(backend, "a red circle <lora:zink:0>")
    half, _ = generate(backend, "a red circle <lora:zink:0.5>")
    assert differs(inked, base) > 2
    assert np.array_equal(zero, base)
    assert 0 < differs(half, base) < differs(inked, base)
    assert "Lora hashes" not in info and inked_info["Lora hashes"].startswith("zink: ")
    assert inked_info["Prompt"] == "a red circle <lora:zink:1>"
    again, _ = generate(backend, "a red circle")  # a job without the tag: the base model again
    assert np.array_equal(again, base)


def test_comfyuis_layout_loads_and_two_loras_work_at_once(backend):
    base, _ = generate(backend, "a red circle")
    comfy, _ = generate(backend, "a red circle <lora:zcomfy:1>")
    both, info = generate(backend, "a red circle <lora:zcomfy:1> <lora:zink:1>")
    assert differs(comfy, base) > 2 and differs(both, comfy) > 2
    assert "zcomfy: " in info["Lora hashes"] and "zink: " in info["Lora hashes"]


def test_removing_the_adapters_restores_the_transformer_bit_for_bit(backend):
    model = backend.manager.load("tiny-zimage")
    backend.manager.loras.remove_all(model.pipe)
    before = {name: tensor.detach().clone() for name, tensor in transformer_weights(model).items()}
    objects = {name: id(tensor) for name, tensor in transformer_weights(model).items()}
    encoder = {name: p.data_ptr() for name, p in model.pipe.text_encoder.named_parameters()}
    generate(backend, "a red circle <lora:zink:1> <lora:zcomfy:-0.5>")
    assert len(transformer_weights(model)) > len(before)  # the adapters' own layers, while attached
    backend.manager.loras.remove_all(model.pipe)
    after = transformer_weights(model)
    assert list(after) == list(before)
    assert all(torch.equal(after[name], before[name]) for name in before)
    assert {name: id(tensor) for name, tensor in after.items()} == objects  # the same tensors, not copies
    assert {name: p.data_ptr() for name, p in model.pipe.text_encoder.named_parameters()} == encoder


def test_img2img_and_the_hires_fix_use_the_loras(backend):
    from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest

    init = Image.new("RGB", (64, 64), (200, 40, 40))

    def img2img(prompt):
        return np.asarray(backend.run(IMG2IMG, Img2ImgRequest(
            prompt=prompt, steps=4, width=64, height=64, seed=3, sampler="Euler", cfg_scale=1.0,
            checkpoint="tiny-zimage", init_images=[init], denoising_strength=0.8, save_images=False)).images[0],
            dtype=np.int16)

    assert differs(img2img("a red circle <lora:zink:1>"), img2img("a red circle")) > 1
    hires, info = generate(backend, "a red circle <lora:zink:1>", enable_hr=True, hr_scale=1.5, steps=2)
    plain, _ = generate(backend, "a red circle", enable_hr=True, hr_scale=1.5, steps=2)
    assert hires.shape == (96, 96, 3) and differs(hires, plain) > 1 and "zink: " in info["Lora hashes"]


def test_a_lora_for_another_model_is_refused_naming_the_file(backend, models):
    from safetensors.torch import load_file, save_file

    state = load_file(models / "Lora" / "zink.safetensors")
    key = next(k for k in state if k.endswith("lora_A.weight"))
    state[key] = torch.zeros(4, 7)  # a layer of another width
    broken = models / "Lora" / "zmisfit.safetensors"
    save_file(state, str(broken))
    base, _ = generate(backend, "a red circle")
    try:
        with pytest.raises(BadModelFile, match="zmisfit.safetensors: does not fit this checkpoint"):
            generate(backend, "a red circle <lora:zmisfit:1>")
    finally:
        broken.unlink()
    assert np.array_equal(generate(backend, "a red circle")[0], base)


def test_a_lora_on_a_transformer_stored_in_fp8_computes_in_the_compute_dtype(backend):
    backend.settings.override("fp8_storage", "Enable")  # A1111's FP8 weight option: the transformer kept in fp8
    try:
        base, _ = generate(backend, "a red circle")
        inked, _ = generate(backend, "a red circle <lora:zink:1>")
        with backend.manager.use("tiny-zimage") as model:
            layer = model.pipe.transformer.layers[0].attention.to_q
            assert layer.base_layer.weight.dtype == torch.float8_e4m3fn
            assert {p.dtype for p in layer.lora_A.parameters()} == {torch.float32}  # not rounded to fp8
        assert differs(inked, base) > 2
        assert np.array_equal(generate(backend, "a red circle")[0], base)
    finally:
        backend.settings.override("fp8_storage", "Disable")
