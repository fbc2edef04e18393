"""Models read from files outside the checkpoints (here upscalers) are entries of the one cache: their bytes are
counted in its total and listed by /zoo/v1/models/cached, a budget too small evicts them by the same policy
(never while in use), and asking for one twice loads it once. The shared folder scan (ModelFolders) lists each
file once and finds it by name, never opening what a request names as a path."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from modules import upscalers
from modules.errors import ModelNotFound
from modules.models import manager as manager_module
from modules.models.memory import module_bytes
from modules.models.model_folders import ModelFolders
from tests.inprocess_app import api_client
from tests.test_model_cache import make_backend
from tests.upscaler_fixtures import upscaler_models  # noqa: F401 - fixture

MB = 1024 ** 2


def picture() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), "RGB")


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """The upscaler files the manager reads, in order."""
    read, real = [], manager_module.load_upscaler
    monkeypatch.setattr(manager_module, "load_upscaler", lambda path: (read.append(path.name), real(path))[1])
    return read


def upscaler_rows(backend) -> list[dict]:
    return [m for m in backend.cached_models() if m["kind"] == "upscaler"]


def test_an_upscaler_is_counted_in_the_cache_listed_with_its_bytes_and_loaded_once(
        upscaler_models, tmp_path, loads):  # noqa: F811
    backend = make_backend(upscaler_models, tmp_path)
    before = backend.cache_totals()["ram_bytes"]
    out = upscalers.upscale(picture(), "tiny-esrgan", 4, backend.manager)
    assert out.size == (64, 48)
    with backend.manager.upscaler_model("tiny-esrgan") as model:
        weights = module_bytes(model.model)
    assert weights > 0 and loads == ["tiny-esrgan.safetensors"]
    with api_client(backend, tmp_path) as client:
        answer = client.get("/zoo/v1/models/cached").json()
    (row,) = [m for m in answer["models"] if m["kind"] == "upscaler"]
    assert row["title"] == "tiny-esrgan" and row["bytes"] == weights and row["architecture"] == "ESRGAN"
    assert not row["in_use"] and row["components"][0]["bytes"] == weights
    assert answer["ram_bytes"] == before + weights == sum(m["bytes"] for m in answer["models"])
    # Hires fix's road (the job holds the device) and Extras' road find the same cached model.
    assert upscalers.upscale(picture(), "tiny-esrgan", 2, backend.manager, device_held=True).size == (32, 24)
    assert upscalers.upscale(picture(), "tiny-esrgan", 2, backend.manager).size == (32, 24)
    assert loads == ["tiny-esrgan.safetensors"] and len(upscaler_rows(backend)) == 1
    assert backend.manager.unload("tiny-esrgan") == [] and upscaler_rows(backend) == []
    assert backend.cache_totals()["ram_bytes"] == before


def test_a_budget_too_small_for_two_evicts_the_least_recently_used_upscaler(upscaler_models, tmp_path,
                                                                           loads):  # noqa: F811
    probe = make_backend(upscaler_models, tmp_path / "probe")
    with probe.manager.upscaler_model("tiny-esrgan") as model:
        one = module_bytes(model.model)
    loads.clear()
    backend = make_backend(upscaler_models, tmp_path / "small", ram_budget=one + one // 2)
    upscalers.upscale(picture(), "tiny-esrgan", 4, backend.manager)
    upscalers.upscale(picture(), "tiny-realesrgan", 4, backend.manager)
    assert [m["title"] for m in upscaler_rows(backend)] == ["tiny-realesrgan"]  # the older one made room
    assert backend.cache_totals()["ram_bytes"] <= backend.cache_totals()["ram_budget"]
    upscalers.upscale(picture(), "tiny-esrgan", 4, backend.manager)
    assert loads == ["tiny-esrgan.safetensors", "tiny-realesrgan.pth", "tiny-esrgan.safetensors"]
    assert [m["title"] for m in upscaler_rows(backend)] == ["tiny-esrgan"]


def test_an_upscaler_in_use_is_never_evicted(upscaler_models, tmp_path, loads):  # noqa: F811
    backend = make_backend(upscaler_models, tmp_path, ram_budget=1)  # nothing fits: only what is in use stays
    manager = backend.manager
    with manager.upscaler_model("tiny-esrgan") as first:
        with manager.upscaler_model("tiny-realesrgan"):
            assert {m["title"] for m in upscaler_rows(backend)} == {"tiny-esrgan", "tiny-realesrgan"}
            assert all(m["in_use"] for m in upscaler_rows(backend))
        with manager.upscaler_model("tiny-esrgan") as again:
            assert again is first  # the same cached model, not read again
    assert loads == ["tiny-esrgan.safetensors", "tiny-realesrgan.pth"]
    manager.cache.make_room(0)  # what the next load does first: now nothing holds them, both go
    assert upscaler_rows(backend) == [] and backend.cache_totals()["ram_bytes"] == 0


def test_an_upscaler_goes_onto_the_device_level_like_every_cached_module(upscaler_models, tmp_path):  # noqa: F811
    """On a GPU the cache copies a module's weights onto the device and points them back at the RAM copy when it
    leaves; forced here on the CPU (fresh tensors as the "device" copies), the spandrel model runs the same."""
    plain = make_backend(upscaler_models, tmp_path / "plain")
    expected = np.asarray(upscalers.upscale(picture(), "tiny-esrgan", 4, plain.manager))
    backend = make_backend(upscaler_models, tmp_path / "device")
    backend.manager.cache.force_device_level = True
    out = np.asarray(upscalers.upscale(picture(), "tiny-esrgan", 4, backend.manager))
    (row,) = upscaler_rows(backend)
    assert row["where"] == "device" and backend.cache_totals()["device_bytes"] == row["bytes"]
    assert np.array_equal(out, expected)


def test_a_module_placed_inside_a_jobs_inference_mode_still_takes_gradients():
    """A job places a module midway (GAN projection's LPIPS network, an upscaler in hires fix), maybe inside its
    inference mode: the device copies must be ordinary tensors, or the projection's backward pass fails."""
    import torch

    from modules.devices import device_config
    from modules.models.cache import ModelCache

    cache = ModelCache(device_config("cpu"), ram_budget=10**9, vram_budget=10**9)
    cache.force_device_level = True
    layer = torch.nn.Linear(3, 2).requires_grad_(False)
    entry = cache.add_module("lpips:x", "lpips", None, "VGG16", layer, 0.0)
    with torch.inference_mode():
        cache.place_on_device(entry)
    assert entry.on_device and not layer.weight.is_inference()
    x = torch.ones(1, 3, requires_grad=True)
    layer(x).sum().backward()
    assert torch.equal(x.grad, layer.weight.sum(0, keepdim=True))


def test_model_folders_list_each_file_once_and_find_names_only_among_them(tmp_path):
    first, second = tmp_path / "VAE", tmp_path / "extra"
    (first / "sub").mkdir(parents=True)
    second.mkdir()
    for path in (first / "b.safetensors", first / "sub" / "a.safetensors", second / "b.safetensors",
                 first / "notes.txt"):
        path.write_bytes(b"x")
    os.symlink(first / "b.safetensors", second / "link.safetensors")  # the same file again, by another name
    folders = ModelFolders([first, second], (".safetensors",), "VAE file")
    assert folders.names() == ["b.safetensors", "sub/a.safetensors"]
    assert folders.find("b.safetensors").path == first / "b.safetensors"  # the earlier folder's
    assert folders.find("a").path == first / "sub" / "a.safetensors"  # without its folder and extension
    assert folders.find("C:\\models\\a.safetensors").name == "sub/a.safetensors"  # a client's path: its file name
    with pytest.raises(ModelNotFound, match="VAE file '../b.txt'"):
        folders.find("../b.txt")
    stems = ModelFolders([first, second], (".safetensors",), "upscaler", stem_names=True)
    assert stems.names() == ["a", "b"]
    assert stems.find("b.safetensors").name == "b"
