"""Switching between single-file checkpoints of one architecture reuses the modules built for the
first (modules/models/skeletons.py): the evicted model's weights are freed, its modules get the
next checkpoint's weights, and that checkpoint then behaves exactly as if it had been built afresh."""
from __future__ import annotations

import gc
import weakref

import pytest
import torch

from modules.devices import DeviceConfig
from modules.models.fast_load import load_single_file
from modules.models.skeletons import SkeletonPool, skeleton_key, strip_weights
from tests.test_fast_load import _assert_same_pipeline
from tests.test_model_cache import _reseed_unet, cached_names, make_backend
from tests.tiny_models import make_single_file, make_tiny_sd2, make_tiny_sd15, make_tiny_sdxl, sidecar_dir


@pytest.fixture(scope="module")
def single_files(tmp_path_factory):
    """Two SD 1.x single files with different UNets, and an SD 2.x one (another architecture)."""
    root = tmp_path_factory.mktemp("skeleton-models")
    work, sd = root / "work", root / "Stable-diffusion"
    for name, seed in (("one", 1), ("two", 2)):
        torch.manual_seed(seed)
        folder = make_tiny_sd15(work / name)
        _reseed_unet(folder, seed)
        make_single_file(folder, sd / f"{name}.safetensors")
    make_single_file(make_tiny_sd2(work / "sd2"), sd / "sd2.safetensors")
    for name, seed in (("xl-one", 3), ("xl-two", 4)):
        torch.manual_seed(seed)
        folder = make_tiny_sdxl(work / name)
        _reseed_unet(folder, seed)
        make_single_file(folder, sd / f"{name}.safetensors")
    return root


def room_for_one(backend) -> None:
    size = backend.manager.load("one").bytes
    backend.manager.unload_all()
    backend.manager.cache.ram_budget = int(size * 1.5)


def generate(pipe):
    return pipe("a red circle", num_inference_steps=2, guidance_scale=5.0, height=64, width=64, output_type="np",
                generator=torch.Generator().manual_seed(7)).images


def test_switch_of_one_architecture_reuses_the_built_modules(single_files, tmp_path):
    backend = make_backend(single_files, tmp_path)
    room_for_one(backend)
    manager = backend.manager
    one = manager.load("one")
    assert one.reused_modules == 0
    built = {name: weakref.ref(getattr(one.pipe, name)) for name in ("unet", "vae", "text_encoder")}
    first_weight = weakref.ref(next(one.pipe.unet.parameters()))
    del one

    two = manager.load("two")  # no room for both: "one" is evicted, and its modules wait for "two"
    assert cached_names(manager) == ["two.safetensors"]
    assert two.reused_modules == 3
    for name, ref in built.items():
        assert getattr(two.pipe, name) is ref(), f"{name} was built again"
    assert first_weight() is None, "the evicted checkpoint's weights are still held (without a gc.collect)"

    fresh = load_single_file(single_files / "Stable-diffusion" / "two.safetensors",
                             sidecar_dir(single_files / "Stable-diffusion" / "two.safetensors"), torch.float32)
    _assert_same_pipeline(two.pipe, fresh)
    fresh.set_progress_bar_config(disable=True)
    assert (generate(two.pipe) == generate(fresh)).all()


def test_another_architecture_builds_its_own(single_files, tmp_path):
    backend = make_backend(single_files, tmp_path)
    room_for_one(backend)
    backend.manager.load("one")
    sd2 = backend.manager.load("sd2")  # SD 2.x: other text encoder and UNet config; same VAE config
    assert cached_names(backend.manager) == ["sd2.safetensors"]
    assert sd2.reused_modules == 1
    assert type(sd2.pipe.text_encoder).__name__ == "CLIPTextModel"
    assert sd2.pipe.text_encoder.config.hidden_size != 0


def test_unload_all_starts_clean(single_files, tmp_path):
    backend = make_backend(single_files, tmp_path)
    backend.manager.load("one")
    backend.manager.unload_all()
    assert len(backend.manager.cache.skeletons) == 0
    assert backend.manager.load("two").reused_modules == 0


def test_offloaded_models_are_not_reused(single_files, tmp_path):
    backend = make_backend(single_files, tmp_path, devices=DeviceConfig(torch.device("cpu"), torch.float32, torch.float32, "model"))
    room_for_one(backend)
    backend.manager.load("one")
    assert backend.manager.load("two").reused_modules == 0


def test_strip_frees_weights_and_keeps_ties_and_non_persistent_buffers():
    layer = torch.nn.Sequential(torch.nn.Embedding(4, 3), torch.nn.Linear(3, 4, bias=False))
    layer[1].weight = layer[0].weight  # tied, as an LM head and its embedding
    layer.register_buffer("ids", torch.arange(4), persistent=False)
    layer.register_buffer("scale", torch.ones(1))
    strip_weights(layer)
    assert layer[0].weight.is_meta and layer[1].weight is layer[0].weight
    assert layer.scale.is_meta
    assert torch.equal(layer.ids, torch.arange(4))


def test_pool_keeps_only_modules_the_fast_loader_built():
    pool = SkeletonPool(max_skeletons=1)
    assert not pool.keep(torch.nn.Linear(2, 2))
    first, second = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    first._zoo_skeleton_key, second._zoo_skeleton_key = "a", "b"
    assert pool.keep(first) and pool.keep(second)
    assert len(pool) == 1 and pool.take("a") is None and pool.take("b") is second


def test_skeleton_key_ignores_where_a_config_came_from():
    config = {"sample_size": 64, "_name_or_path": "/x", "_diffusers_version": "0.1"}
    same = {"sample_size": 64, "_name_or_path": "/y", "_diffusers_version": "0.2"}
    assert skeleton_key("c", config, torch.float16) == skeleton_key("c", same, torch.float16)
    assert skeleton_key("c", config, torch.float16) != skeleton_key("c", {"sample_size": 32}, torch.float16)
    assert skeleton_key("c", config, torch.float16) != skeleton_key("c", config, torch.float32)


def test_sdxl_switch_reuses_all_four_modules(single_files, tmp_path):
    backend = make_backend(single_files, tmp_path)
    size = backend.manager.load("xl-one").bytes
    backend.manager.unload_all()
    backend.manager.cache.ram_budget = int(size * 1.5)
    one = backend.manager.load("xl-one")
    encoder_2 = weakref.ref(one.pipe.text_encoder_2)
    del one
    two = backend.manager.load("xl-two")
    assert two.reused_modules == 4 and two.pipe.text_encoder_2 is encoder_2()
    path = single_files / "Stable-diffusion" / "xl-two.safetensors"
    from diffusers import StableDiffusionXLPipeline
    from modules.models.fast_load import load_single_file_with_report
    fresh = load_single_file_with_report(path, sidecar_dir(path), torch.float32,
                                         pipeline_class=StableDiffusionXLPipeline).pipeline
    fresh.set_progress_bar_config(disable=True)
    assert (generate(two.pipe) == generate(fresh)).all()
