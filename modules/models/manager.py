"""The pipeline manager: the only owner of model weights.

Jobs ask for a checkpoint by name and hold the device while they run, one at a time in arrival
order. Checkpoints stay cached in RAM (LRU within --ram-budget) and, on a GPU, resident on the
device within --vram-budget, so switching back to a recent checkpoint costs a copy, not a load."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from modules.devices import DeviceConfig
from modules.errors import ModelNotFound
from modules.jobs import Interrupted
from modules.models import folder_walk, loader
from modules.models.cache import CachedModel, ModelCache
from modules.models.fifo_lock import FairLock
from modules.models.hashing import tensors_sha256
from modules.models.memory import default_ram_budget, default_vram_budget, pipeline_components
from modules.models.registry import CheckpointInfo, Registry
from modules.models.zoo_registry import ZooModelInfo
from modules.models.building import BUILD_LOCK
from modules.models.refs import UPSCALER, VAE_FILE, ZOO_KINDS, ModelRef, as_ref
from modules.models.vae_files import VaeFiles
from modules.upscalers.files import UpscalerFiles

log = logging.getLogger(__name__)

LoadedCheckpoint = CachedModel  # what a job gets


@dataclass
class LoadedModule:
    """A β-VAE, GAN or VAE file as a job gets it: what it is, and the module."""
    info: object
    module: object
MAX_ZOO_MODELS = 8


class PipelineManager:
    def __init__(self, registry: Registry, devices: DeviceConfig, offline: bool = False,
                 ram_budget: int | None = None, vram_budget: int | None = None, queue_limit: int | None = None,
                 queue_per_user: int | None = None, zoo_registry=None, vae_folders: list | None = None,
                 upscaler_folders: list | None = None):
        self.registry = registry
        self.zoo_registry = zoo_registry  # β-VAEs and GANs (models/Latent, models/GAN)
        self.vae_files = VaeFiles(list(vae_folders or []))
        self.upscaler_files = UpscalerFiles(list(upscaler_folders or []))  # models/ESRGAN ...
        self.devices = devices
        self.offline = offline
        self.device_lock = FairLock(queue_limit, queue_per_user)  # users served in turn
        self.jobs_on_device = 0  # jobs inside use() now: never more than one, as the lock promises
        self.peak_jobs_on_device = 0
        self._on_device_lock = threading.Lock()
        self.cache = ModelCache(devices, ram_budget or default_ram_budget(),
                                vram_budget if vram_budget is not None else default_vram_budget(devices.device))
        self.default_checkpoint: str | None = None  # a title; settings and --ckpt set it
        self.on_model_loaded: list[Callable[[LoadedCheckpoint], None]] = []
        self._current_key: str | None = None
        self._state_lock = threading.Lock()
        self._zoo_models: OrderedDict[str, object] = OrderedDict()
        self._module_locks: dict[int, threading.Lock] = {}
        self._data: OrderedDict[tuple, object] = OrderedDict()

    @property
    def current(self) -> LoadedCheckpoint | None:
        """The checkpoint used most recently (what A1111 calls the loaded model)."""
        return self.cache.models.get(self._current_key) if self._current_key else None

    def resolve(self, checkpoint: str | None) -> CheckpointInfo:
        """The checkpoint a job will use: the one it names, else the default, else the first usable one.
        Never "what is loaded": a job's own checkpoint (override_settings) must not become later jobs' default."""
        if checkpoint:
            return self.registry.find(checkpoint)
        if self.default_checkpoint:
            try:
                return self.registry.find(self.default_checkpoint)
            except ModelNotFound:
                pass
        usable = self.registry.usable()
        if not usable:
            raise ModelNotFound("checkpoint", "(none)") from None
        return usable[0]

    @contextmanager
    def use(self, checkpoint: "ModelRef | str | None", cancelled: Callable[[], bool] | None = None, owner: str | None = None,
            key: str | None = None) -> Iterator[LoadedCheckpoint]:
        """Hold the device with `checkpoint` on it for the duration of one job of `owner`'s (the user; `key`
        names the job in the queue). Raises Interrupted when `cancelled()` turns true while waiting, and
        QueueFull when too many jobs wait already (UserQueueFull: too many of this owner's)."""
        ref = as_ref(checkpoint)
        if ref.kind in ZOO_KINDS:
            with self._use_zoo(ref) as loaded:
                yield loaded
            return
        if ref.kind == VAE_FILE:
            with self._use_vae_file(ref, cancelled, owner, key) as loaded:
                yield loaded
            return
        if ref.kind == UPSCALER:
            with self._use_upscaler(ref, cancelled, owner, key) as loaded:
                yield loaded
            return
        info = self.resolve(ref.name)
        if not self.device_lock.acquire(cancelled, owner, key):
            raise Interrupted()
        try:
            model = self._cached_or_loaded(info)
            try:
                self.cache.place_on_device(model)
                with self._on_device_lock:
                    self.jobs_on_device += 1
                    self.peak_jobs_on_device = max(self.peak_jobs_on_device, self.jobs_on_device)
                try:
                    yield model
                finally:
                    with self._on_device_lock:
                        self.jobs_on_device -= 1
            finally:
                self.cache.release(model)
        finally:
            self.device_lock.release()

    def load(self, checkpoint: str | None) -> LoadedCheckpoint:
        """Load (or find in the cache) and place on the device, without running anything."""
        with self.use(checkpoint) as model:
            return model

    def unload(self, title: str | None = None) -> None:
        """Drop one checkpoint (by title), or the current one, from every level of the cache."""
        key = _key(self.registry.find(title)) if title else self._current_key
        if key:
            self.cache.unload(key)

    def unload_all(self) -> list[str]:
        return self.cache.unload_all()

    def zoo_model(self, info: ZooModelInfo):
        """A β-VAE or GAN from models/Latent or models/GAN, loaded once and kept on the device.
        These are small (a few MB), so they are cached beside the checkpoints, outside the budgets."""
        key = f"{info.path.resolve()}|{info.sha256}"
        with self._state_lock:
            module = self._zoo_models.get(key)
            if module is None:
                from modules import zoo

                load = zoo.load_latent_model if info.kind == "beta_vae" else zoo.load_gan
                with BUILD_LOCK:  # not while another thread's load has meta-device patches on (building.py)
                    module = load(info.path)
                module = module.to(self.devices.device)
                self._zoo_models[key] = module
                while len(self._zoo_models) > MAX_ZOO_MODELS:
                    self._zoo_models.popitem(last=False)
            self._zoo_models.move_to_end(key)
            return module

    @contextmanager
    def _use_zoo(self, ref: ModelRef) -> Iterator["LoadedModule"]:
        """A β-VAE or GAN, under its own lock: these are small and quick, so browsing them stays
        interactive while a long Stable Diffusion job holds the device."""
        registry = self.zoo_registry
        try:
            info = registry.find(ref.kind, ref.name)
        except ModelNotFound:
            registry.scan()  # a file copied in since the last scan
            info = registry.find(ref.kind, ref.name)
        module = self.zoo_model(info)
        with self._state_lock:
            lock = self._module_locks.setdefault(id(module), threading.Lock())
        with lock:
            yield LoadedModule(info, module)

    @contextmanager
    def _use_vae_file(self, ref: ModelRef, cancelled, owner, key) -> Iterator["LoadedModule"]:
        """A VAE file of models/VAE, on the device while the job holds it."""
        vae_file = self.vae_files.find(ref.name or "")
        if not self.device_lock.acquire(cancelled, owner, key):
            raise Interrupted()
        try:
            yield LoadedModule(vae_file, self.vae_files.load(vae_file, self.devices.vae_dtype, self.devices.device))
        finally:
            self.device_lock.release()

    def upscaler_model(self, name: str):
        """An upscaler file's spandrel model, on the device (cached). For a job that holds the device
        already (hires fix inside txt2img); anyone else goes through use(ModelRef(UPSCALER, name))."""
        return self.upscaler_files.load(self.upscaler_files.find(name), self.devices.device)

    @contextmanager
    def _use_upscaler(self, ref: ModelRef, cancelled, owner, key) -> Iterator["LoadedModule"]:
        """An upscaler model of models/ESRGAN (RealESRGAN, SwinIR), on the device while the job holds it.
        No name: the built-in resamplers only (Lanczos ...), which need neither a model nor the device."""
        if ref.name is None:
            yield LoadedModule(None, None)
            return
        upscaler = self.upscaler_files.find(ref.name)
        if not self.device_lock.acquire(cancelled, owner, key):
            raise Interrupted()
        try:
            yield LoadedModule(upscaler, self.upscaler_files.load(upscaler, self.devices.device))
        finally:
            self.device_lock.release()

    def cached_data(self, key: tuple, build: Callable[[], object]) -> object:
        """Data derived from a model (a data set's encodings for the Latent map), built once per key."""
        with self._state_lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = build()
        with self._state_lock:
            self._data[key] = value
            while len(self._data) > MAX_ZOO_MODELS:
                self._data.popitem(last=False)
        return value

    def _cached_or_loaded(self, info: CheckpointInfo) -> CachedModel:
        key = _key(info)
        model = self.cache.get(key)
        if model is not None:
            self.cache.acquire(model)
        else:
            model = self._load(info, key)
        self._current_key = key
        return model

    def _load(self, info: CheckpointInfo, key: str) -> CachedModel:
        self.cache.make_room(_size_on_disk(info))
        started = time.perf_counter()
        reused_before = self.cache.skeletons.reused  # loads run one at a time, under the device lock
        pipe = loader.load_pipeline(info, self.devices.dtype, self.offline, skeletons=self.cache.skeletons)
        pipe.set_progress_bar_config(disable=True)
        if self.devices.vae_dtype != self.devices.dtype:
            pipe.vae.to(dtype=self.devices.vae_dtype)
        hashes = {name: self._component_hash(info, name, module) for name, module in pipeline_components(pipe).items()}
        model = self.cache.add(key, info, pipe, dict(pipe.scheduler.config), time.perf_counter() - started, hashes)
        model.reused_modules = self.cache.skeletons.reused - reused_before
        if self.devices.offload == "model":
            model.pipe.enable_model_cpu_offload(device=self.devices.device)
        elif self.devices.offload == "sequential":
            # Group offload: a block at a time on the device, streamed ahead where CUDA allows.
            model.pipe.enable_group_offload(onload_device=self.devices.device, offload_type="leaf_level",
                                            use_stream=self.devices.device.type == "cuda")
        log.info("loaded %s (%s) in %.1f s%s", info.title, info.architecture.label, model.load_seconds,
                 f", reusing {model.reused_modules} built modules" if model.reused_modules else "")
        for callback in self.on_model_loaded:
            callback(model)
        return model

    def _component_hash(self, info: CheckpointInfo, name: str, module) -> str:
        """Content hash of a component's weights, computed once per checkpoint version and dtype.

        The UNet is what makes a checkpoint itself, so it is keyed by the file's hash instead:
        hashing it (2-5 GB) would double a first load, to find sharing that almost never exists."""
        dtype = next(module.parameters()).dtype
        if name == "unet" and info.sha256:
            return f"unet-of:{info.sha256}:{dtype}"
        cache_key = f"component:{info.sha256}:{name}:{dtype}"
        known = self.registry.hash_cache.remembered(cache_key) if info.sha256 else None
        if known:
            return known
        digest = tensors_sha256([*module.named_parameters(), *module.named_buffers()])
        if info.sha256:
            self.registry.hash_cache.remember(cache_key, digest)
        return digest


def _key(info: CheckpointInfo) -> str:
    return f"{info.path.resolve()}|{info.sha256}"


def _size_on_disk(info: CheckpointInfo) -> int:
    if info.path.is_dir():
        return sum(f.stat().st_size for f in folder_walk.files(info.path, (".safetensors", ".bin")))
    return info.path.stat().st_size
