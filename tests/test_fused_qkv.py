"""Fused QKV projections (modules/models/fused_qkv.py), the default on a CPU: the same pictures as unfused through
the runner, with LoRAs too, the same bytes in the cache, again after a skeleton takes the next checkpoint's
weights, and inside the stop points' sliced self-attention. Correctness only; the speed is bench/fused_qkv.py's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention

from modules.backend import Backend, BackendConfig
from modules.capabilities.txt2img.request import Txt2ImgRequest
from modules.devices import device_config
from modules.generation import stop_points
from modules.models import fused_qkv
from tests import tiny_models
from tests.lora_fixtures import make_kohya_lora


@pytest.fixture(scope="module", autouse=True)
def tiny_attentions_fused():
    """The tiny test models' attentions are 32-64 wide: fused here as a full-size model's are (the app leaves
    attentions under MIN_WIDTH unfused, where it measured no gain)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused_qkv, "MIN_WIDTH", 0)
        yield


@pytest.fixture(scope="module")
def fused_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("fused-models")
    sd = root / "Stable-diffusion"
    one = tiny_models.make_tiny_sd15(sd / "tiny-sd15")
    tiny_models.make_tiny_sd2(sd / "tiny-sd2")
    tiny_models.make_tiny_sdxl(sd / "tiny-sdxl")
    make_kohya_lora(one, root / "Lora" / "ink.safetensors", seed=1)
    return root


def backend_for(models, tmp_path_factory, fused: bool) -> Backend:
    work = tmp_path_factory.mktemp("fused" if fused else "unfused")
    return Backend(BackendConfig(models_dir=models, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu", fused_projections=fused), offline=True))


@pytest.fixture(scope="module")
def fused(fused_models, tmp_path_factory):
    return backend_for(fused_models, tmp_path_factory, True)


@pytest.fixture(scope="module")
def unfused(fused_models, tmp_path_factory):
    return backend_for(fused_models, tmp_path_factory, False)


def picture(backend, prompt="a red circle on a white background", checkpoint="tiny-sd15", **values):
    request = Txt2ImgRequest(prompt=prompt, negative_prompt="blurry", steps=3, width=64, height=64, seed=11,
                             sampler="Euler a", checkpoint=checkpoint, save_images=False, **values)
    return np.asarray(backend.txt2img(request).images[0], dtype=np.int16)


def attentions(model) -> list[Attention]:
    return [m for m in model.pipe.unet.modules() if isinstance(m, Attention)]


def fused_count(model) -> int:
    return sum(fused_qkv.fused_weights(a) is not None for a in attentions(model))


@pytest.mark.parametrize("checkpoint", ["tiny-sd15", "tiny-sd2", "tiny-sdxl"])
def test_fused_picture_is_the_unfused_one(fused, unfused, checkpoint):
    model = fused.manager.load(checkpoint)
    assert fused_count(model) == len(attentions(model)) > 0  # every UNet attention, self and cross
    assert fused_count(unfused.manager.load(checkpoint)) == 0
    assert "fused QKV" in fused.config.devices.describe()
    a, b = picture(fused, checkpoint=checkpoint), picture(unfused, checkpoint=checkpoint)
    assert np.abs(a - b).max() <= 1, checkpoint
    assert a.std() > 1  # a picture, not a blank


def test_fused_weights_are_the_models_own_parameters_and_bytes(fused, unfused):
    model, plain = fused.manager.load("tiny-sd15"), unfused.manager.load("tiny-sd15")
    assert model.bytes == plain.bytes  # slices of one matrix: no second copy, the cache counts the same
    state, plain_state = model.pipe.unet.state_dict(), plain.pipe.unet.state_dict()
    assert list(state) == list(plain_state)  # no extra layers for the LoRA loaders or the hashes to meet
    assert all(torch.equal(state[k], plain_state[k]) for k in state)
    attn = next(a for a in attentions(model) if not a.is_cross_attention)
    weight, _ = fused_qkv.fused_weights(attn)
    assert weight.data_ptr() == attn.to_q.weight.data_ptr() and weight.shape[0] == 3 * attn.to_q.out_features


def test_a_lora_picture_is_the_same_fused_or_not(fused, unfused):
    base = picture(fused)
    inked = picture(fused, "a red circle on a white background <lora:ink:1>")
    assert np.abs(inked - base).mean() > 5  # the LoRA is in the picture: its layers wrap the projections
    assert np.abs(inked - picture(unfused, "a red circle on a white background <lora:ink:1>")).max() <= 1
    model = fused.manager.load("tiny-sd15")
    assert fused_count(model) == 0  # while a LoRA adapter is on, each projection runs on its own
    assert np.abs(picture(fused) - base).max() == 0  # the next job without: adapters disabled ...
    assert fused_count(model) == len(attentions(model))  # ... so the wrapped layers are fused again
    fused.manager.loras.remove_all(model.pipe)
    assert fused_count(model) == len(attentions(model))  # the very parameters back: still fused
    assert np.abs(picture(fused) - base).max() == 0


def test_weights_moved_or_replaced_are_computed_unfused_then_fused_again(fused_models, tmp_path_factory):
    backend = backend_for(fused_models, tmp_path_factory, True)
    model = backend.manager.load("tiny-sd15")
    unet = model.pipe.unet
    sample, context = torch.randn(2, 4, 8, 8), torch.randn(2, 77, unet.config.cross_attention_dim)
    with torch.inference_mode():
        before = unet(sample, 10, encoder_hidden_states=context).sample
    attn = attentions(model)[0]
    attn.to_k.weight.data = attn.to_k.weight.data.clone()  # as a device move or a new checkpoint's weights do
    assert fused_qkv.fused_weights(attn) is None
    with torch.inference_mode():
        assert torch.allclose(unet(sample, 10, encoder_hidden_states=context).sample, before, atol=1e-5)
    assert fused_qkv.fuse(unet) == len(attentions(model)) and fused_qkv.fused_weights(attn) is not None


def test_skeleton_reused_for_the_next_checkpoint_is_fused_again(fused_models, tmp_path_factory):
    from tests.tiny_models import make_single_file

    root = tmp_path_factory.mktemp("skeleton-fused")
    sd = root / "Stable-diffusion"
    for name, seed in (("one", 1), ("two", 2)):
        torch.manual_seed(seed)
        make_single_file(tiny_models.make_tiny_sd15(root / "work" / name), sd / f"{name}.safetensors")
    backend, plain = backend_for(root, tmp_path_factory, True), backend_for(root, tmp_path_factory, False)
    size = backend.manager.load("one").bytes
    backend.manager.cache.ram_budget = int(size * 1.5)  # room for one: "two" takes "one"'s modules
    two = backend.manager.load("two")
    assert two.reused_modules >= 1 and fused_count(two) == len(attentions(two))
    assert np.abs(picture(backend, checkpoint="two") - picture(plain, checkpoint="two")).max() <= 1


def test_sliced_self_attention_of_the_stop_points_uses_the_fused_weights(fused, monkeypatch):
    model = fused.manager.load("tiny-sd15")
    unet = model.pipe.unet
    sample, context = torch.randn(2, 4, 16, 16), torch.randn(2, 77, unet.config.cross_attention_dim)
    with torch.inference_mode():
        whole = unet(sample, 10, encoder_hidden_states=context).sample
    monkeypatch.setattr(stop_points, "SLICE_SCORES", 64)  # every self-attention sliced, checked between slices
    checks = []
    calls = []
    real = fused_qkv.fused_weights
    monkeypatch.setattr(fused_qkv, "fused_weights", lambda attn: calls.append(attn) or real(attn))
    with stop_points.checked(unet, lambda: checks.append(1)), torch.inference_mode():
        sliced = unet(sample, 10, encoder_hidden_states=context).sample
    assert len(checks) > 50 and calls  # sliced, and the projections taken fused
    assert torch.allclose(sliced, whole, atol=1e-5)
    assert all(type(a.processor) is fused_qkv.FusedProjections for a in attentions(model))  # put back


def test_narrow_attentions_stay_unfused(fused_models, tmp_path_factory, monkeypatch):
    monkeypatch.setattr(fused_qkv, "MIN_WIDTH", 320)  # the app's: the tiny models' attentions are narrower
    model = backend_for(fused_models, tmp_path_factory, True).manager.load("tiny-sd15")
    assert fused_count(model) == 0 and not any(type(a.processor) is fused_qkv.FusedProjections
                                               for a in attentions(model))


def test_compiled_and_accelerator_configs_do_not_fuse():
    assert device_config("cpu").fuse_qkv
    assert not device_config("cpu", compile=True).fuse_qkv  # inductor builds its own graph
    assert not device_config("cpu", fused_projections=False).fuse_qkv
    assert not device_config("meta").fuse_qkv  # unmeasured off a CPU; the cache's device moves re-point weights
