"""The pipeline manager's cache: LRU within byte budgets, nothing in use evicted, memory really freed,
identical components shared, device residency by re-pointing at the RAM copy."""
from __future__ import annotations

import gc
import threading
import weakref

import pytest
import torch

from modules.backend import Backend, BackendConfig
from modules.devices import device_config
from modules.generation.infotext import parse_infotext
from modules.models.cache import ModelInUse
from modules.models.manager import PipelineManager
from tests import tiny_models


@pytest.fixture(scope="module")
def three_models(tmp_path_factory):
    """Three different SD 1.x checkpoints of the same size, and one that is a copy of the first."""
    root = tmp_path_factory.mktemp("cache-models")
    sd = root / "Stable-diffusion"
    sd.mkdir()
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        torch.manual_seed(seed)
        tiny_models.make_tiny_sd15(sd / name)
        _reseed_unet(sd / name, seed)
    tiny_models.make_single_file(sd / "a", sd / "a-copy.safetensors")
    return root


def _reseed_unet(folder, seed):
    """Give each model its own UNet weights (the builders are deterministic), keep VAE and text encoder."""
    from safetensors.torch import load_file, save_file

    file = next((folder / "unet").glob("*.safetensors"))
    weights = load_file(str(file))
    generator = torch.Generator().manual_seed(seed)
    weights = {k: v + 0.01 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
               for k, v in weights.items()}
    save_file(weights, str(file))


def make_backend(models_dir, tmp_path, ram_budget=None, devices=None) -> Backend:
    return Backend(BackendConfig(models_dir=models_dir, outdir=tmp_path / "out", cache_dir=tmp_path / "cache",
                                 devices=devices or device_config("cpu"), offline=True, ram_budget=ram_budget))


def one_model_bytes(models_dir, tmp_path) -> int:
    backend = make_backend(models_dir, tmp_path)
    return backend.manager.load("a").bytes


def cached_names(manager: PipelineManager) -> list[str]:
    return [m.info.name for m in manager.cache.models.values()]


def test_lru_order_within_a_byte_budget(three_models, tmp_path):
    size = one_model_bytes(three_models, tmp_path)
    # Room for two models. Before a load the manager makes room for the file's size, as sharing is not known yet.
    manager = make_backend(three_models, tmp_path, ram_budget=int(size * 2.05)).manager
    for name in ("a", "b", "c"):
        manager.load(name)
        assert manager.cache.ram_bytes <= manager.cache.ram_budget
    assert cached_names(manager) == ["b", "c"]
    manager.load("b")  # b becomes the most recently used
    manager.load("a")
    assert cached_names(manager) == ["b", "a"]


def test_identical_components_are_shared(three_models, tmp_path):
    manager = make_backend(three_models, tmp_path).manager
    a = manager.load("a")
    alone = manager.cache.ram_bytes
    copy = manager.load("a-copy")  # same weights in the single-file layout
    shared = [name for name in a.components if copy.components[name] is a.components[name]]
    # VAE and text encoders by content; the UNet is keyed by its file, so a second file holds its own.
    assert sorted(shared) == ["text_encoder", "vae"]
    assert manager.cache.ram_bytes == alone + copy.components["unet"].bytes
    manager.unload(copy.info.title)
    b = manager.load("b")  # a different UNet; same VAE and text encoder
    assert b.components["vae"] is a.components["vae"] and b.components["unet"] is not a.components["unet"]
    assert manager.cache.ram_bytes == alone + b.components["unet"].bytes


def test_a_model_in_use_is_never_evicted(three_models, tmp_path):
    manager = make_backend(three_models, tmp_path).manager
    a = manager.load("a")
    manager.cache.acquire(a)  # a job is running on it
    manager.cache.make_room(10**15)  # more than any machine has
    assert cached_names(manager) == ["a"]
    with pytest.raises(ModelInUse, match="in use by a running job"):
        manager.unload(a.info.title)
    assert manager.unload_all() == [a.info.title]
    manager.cache.release(a)
    manager.unload(a.info.title)
    assert cached_names(manager) == []


def live_tensors() -> int:
    # type(o), not isinstance: isinstance reads o.__class__, and torch's deprecated aliases
    # (torch.distributed.reduce_op) warn when their attributes are read.
    return sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())


def test_eviction_frees_the_weights(three_models, tmp_path):
    size = one_model_bytes(three_models, tmp_path)
    manager = make_backend(three_models, tmp_path, ram_budget=int(size * 1.1)).manager
    gc.collect()
    tensors_before = live_tensors()
    a = manager.load("a")
    unet = weakref.ref(a.pipe.unet)
    pipe = weakref.ref(a.pipe)
    del a
    manager.load("b")  # no room for both: a goes
    manager.load("c")  # and b goes
    assert cached_names(manager) == ["c"]
    assert unet() is None and pipe() is None, "an evicted model is still referenced somewhere"
    manager.unload_all()
    gc.collect()
    assert live_tensors() <= tensors_before


def test_device_level_repoints_weights_at_the_ram_copy(three_models, tmp_path):
    """Fresh CPU copies stand in for GPU memory: coming back from the device must not copy the RAM weights."""
    backend = make_backend(three_models, tmp_path)
    cache = backend.manager.cache
    cache.force_device_level = True
    a_size = one_model_bytes(three_models, tmp_path)
    cache.vram_budget = int(a_size * 1.1)  # room for one model on the device
    with backend.manager.device_lock:
        a = backend.manager._cached_or_loaded(backend.registry.find("a"))
        ram_pointers = [p.data_ptr() for p in a.pipe.unet.parameters()]
        cache.place_on_device(a)
        cache.release(a)
        assert a.on_device and all(p.data_ptr() not in ram_pointers for p in a.pipe.unet.parameters())
        assert cache.device_bytes == a.bytes
        b = backend.manager._cached_or_loaded(backend.registry.find("b"))
        cache.place_on_device(b)
        cache.release(b)
    assert b.on_device
    # a's UNet left the device (b shares its VAE and text encoder, which stay).
    assert not a.components["unet"].on_device and a.components["vae"].on_device
    assert [p.data_ptr() for p in a.pipe.unet.parameters()] == ram_pointers
    assert cache.device_bytes <= cache.vram_budget


def test_two_users_with_different_checkpoints_each_get_theirs(three_models, tmp_path):
    backend = make_backend(three_models, tmp_path)
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    results, order = {}, []
    start = threading.Barrier(4)

    def user(name, seed):
        start.wait()
        request = Txt2ImgRequest(prompt=f"user {name}", checkpoint=name, seed=seed, steps=2, width=64, height=64,
                                 save_images=False)
        results[name] = backend.txt2img(request)
        order.append(name)

    threads = [threading.Thread(target=user, args=(n, s)) for n, s in (("a", 1), ("b", 2), ("c", 3), ("a-copy", 4))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(order) == ["a", "a-copy", "b", "c"]
    for name, seed in (("a", 1), ("b", 2), ("c", 3), ("a-copy", 4)):
        parsed = parse_infotext(results[name].infotexts[0])
        assert parsed["Model"] == name and parsed["Seed"] == str(seed) and parsed["Prompt"] == f"user {name}"


def test_jobs_take_the_device_in_arrival_order(three_models, tmp_path):
    from modules.models.fifo_lock import FairLock

    lock, order = FairLock(), []
    lock.__enter__()
    threads = []
    for i in range(5):
        t = threading.Thread(target=lambda i=i: (lock.__enter__(), order.append(i), lock.__exit__()))
        t.start()
        threads.append(t)
        while lock.waiting < i + 1:
            pass
    lock.__exit__()
    for t in threads:
        t.join()
    assert order == [0, 1, 2, 3, 4]


def test_a_models_execution_device_is_found_again_only_when_its_weights_move(three_models, tmp_path, monkeypatch):
    """diffusers walks every module to find a pipeline's execution device: the model finds it once per pipe object
    and placement of the weights, and again after any move (or for another view of the pipe)."""
    import copy

    from modules.capabilities.pipeline_view import pipeline_view
    from modules.models import cache as cache_module

    found = []

    def counted(pipe):
        found.append(pipe)
        return torch.device("cpu")
    monkeypatch.setattr(cache_module, "execution_device", counted)
    backend = make_backend(three_models, tmp_path)
    cache = backend.manager.cache
    cache.force_device_level = True
    with backend.manager.device_lock:
        a = backend.manager._cached_or_loaded(backend.registry.find("a"))
        assert a.execution_device == a.execution_device == torch.device("cpu") and len(found) == 1
        cache.place_on_device(a)  # weights moved: found again
        assert a.execution_device == torch.device("cpu") and len(found) == 2
        a.execution_device
        assert len(found) == 2
        job_model = copy.copy(a)  # a job's model with its own view (another VAE)
        job_model.pipe = pipeline_view(a.pipe, vae=a.pipe.vae)
        job_model.execution_device
        assert found[-1] is job_model.pipe and len(found) == 3
        cache.release(a)


def test_a_jobs_view_reports_the_device_it_was_given_without_walking_the_modules(three_models, tmp_path):
    from diffusers import StableDiffusionPipeline

    from modules.capabilities.pipeline_view import pipeline_view
    from modules.compat import execution_device

    backend = make_backend(three_models, tmp_path)
    with backend.manager.device_lock:
        a = backend.manager._cached_or_loaded(backend.registry.find("a"))
        view = pipeline_view(a.pipe, execution_device=torch.device("meta"), scheduler=a.pipe.scheduler)
        assert execution_device(view) == torch.device("meta")  # what it was given, not its modules' device
        assert isinstance(view, StableDiffusionPipeline) and type(view).__name__ == "StableDiffusionPipeline"
        assert execution_device(a.pipe) == torch.device("cpu") and type(a.pipe) is StableDiffusionPipeline
        again = pipeline_view(view, execution_device=torch.device("cpu"))
        assert type(again) is type(view) and execution_device(again) == torch.device("cpu")
        backend.manager.cache.release(a)
