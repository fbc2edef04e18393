"""The pipeline manager: the only owner of model weights.

Jobs ask for a model by reference (refs.py): a checkpoint holds the device while its job runs, one at
a time in arrival order; a β-VAE or GAN is small and runs under its own lock, so it stays interactive
while a long Stable Diffusion job holds the device. Everything loaded — checkpoints, VAE files, zoo
models, upscalers, face restorers, preview decoders, the LPIPS network, and data built from them — lives
in one cache (cache.py) with one budget and one eviction policy, so switching back to a recent model costs
a copy, not a load, and nothing is loaded twice."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from modules.devices import DeviceConfig
from modules.errors import ModelNotFound
from modules.jobs import Interrupted
from modules.models import compiled, folder_walk, fused_qkv, loader
from modules.models.component_files import ComponentFiles, complete
from modules.models.cache import CHECKPOINT, CachedModel, CacheEntry, ModelCache, weights_moved
from modules.models.cache_policy import CachePolicy
from modules.models.fifo_lock import FairLock
from modules.models.hashing import tensors_sha256
from modules.models.lora_adapters import LoraAdapters, LoraWeights
from modules.models.lora_files import SHORT_HASH_DIGITS, lora_sha256
from modules.models import preview_decoders
from modules.models import fp8_storage
from modules.models.memory import (data_bytes, default_ram_budget, default_vram_budget, module_dtypes,
                                   pipeline_components)
from modules.models.refs import FACE_RESTORER, UPSCALER, VAE_FILE, ZOO_KINDS, ModelRef, as_ref
from modules.models.registry import CheckpointInfo, Registry
from modules.models.vae_files import VaeFiles, load_vae_file
from modules.models.zoo_loader import load_zoo_model
from modules.models.zoo_registry import ZooModelInfo
from modules.models.face_restorer_files import FaceRestorerFiles, load_face_restorer
from modules.models.lpips_files import LpipsFiles, load_perceptual
from modules.models.upscaler_files import UpscalerFiles, load_upscaler

log = logging.getLogger(__name__)

LoadedCheckpoint = CachedModel  # what a job gets
LPIPS, PREVIEW = "lpips", "preview"  # cache kinds of models no job asks for by reference
DEFAULT_CHECKPOINT = "sd_model_checkpoint"  # the setting (A1111's name) that says which checkpoint is the default


@dataclass
class LoadedModule:
    """A β-VAE, GAN or VAE file as a job gets it: what it is, and the module."""
    info: object
    module: object


class PipelineManager:
    def __init__(self, registry: Registry, devices: DeviceConfig, offline: bool = False,
                 ram_budget: int | None = None, vram_budget: int | None = None, queue_limit: int | None = None,
                 queue_per_user: int | None = None, zoo_registry=None, vae_folders: list | None = None,
                 settings=None, policy: CachePolicy | None = None, upscaler_folders: list | None = None,
                 component_folders: list | None = None, face_restorer_folders: list | None = None,
                 preview_folder=None, lpips_folders: list | None = None):
        self.registry = registry
        self.zoo_registry = zoo_registry  # β-VAEs and GANs (models/Latent, models/GAN)
        self.vae_files = VaeFiles(list(vae_folders or []))
        self.upscaler_files = UpscalerFiles(list(upscaler_folders or []))  # models/ESRGAN ...
        self.component_files = ComponentFiles(list(component_folders or []))  # models/text_encoder, models/VAE
        self.face_restorer_files = FaceRestorerFiles(list(face_restorer_folders or []))  # models/GFPGAN
        self.lpips_files = LpipsFiles(list(lpips_folders or []))  # models/LPIPS: GAN projection's perceptual loss
        self.preview_folder = preview_folder  # models/VAE-approx: Approx NN and TAESD previews; None: none
        self._said_missing: set[tuple] = set()  # a missing preview file is logged once per method and format
        self.settings = settings  # where the default checkpoint is read (modules/settings.py); None: no default
        self.devices = devices
        self.offline = offline
        self.device_lock = FairLock(queue_limit, queue_per_user)  # users served in turn
        self.jobs_on_device = 0  # jobs inside use() now: never more than one, as the lock promises
        self.peak_jobs_on_device = 0
        self._on_device_lock = threading.Lock()
        self.cache = ModelCache(devices, ram_budget or default_ram_budget(),
                                vram_budget if vram_budget is not None else default_vram_budget(devices.device),
                                policy)
        self.loras = LoraAdapters(self.cache)  # LoRA adapters attached to the cached pipelines' modules
        self.on_model_loaded: list[Callable[[LoadedCheckpoint], None]] = []
        self._load_lock = threading.Lock()  # zoo models and VAE files load one at a time, outside the device line
        self._state_lock = threading.Lock()
        self._module_locks: dict[str, threading.Lock] = {}
        self._held = threading.local()  # the entries this thread is using now, innermost last

    @property
    def default_checkpoint(self) -> str | None:
        """The checkpoint setting (a title or name), as saved or as --ckpt set it for this run."""
        return self.settings.get(DEFAULT_CHECKPOINT) if self.settings is not None else None

    def resolve(self, checkpoint: str | None) -> CheckpointInfo:
        """The checkpoint a job will use: the one it names, else the default setting, else the first usable one.
        Never "what is loaded": a job's own checkpoint (override_settings) must not become later jobs' default."""
        if checkpoint:
            return self.registry.find(checkpoint)
        default = self.default_checkpoint
        if default:
            try:
                return self.registry.find(default)
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
        QueueFull when too many jobs wait already (UserQueueFull: too many of this owner's).
        A β-VAE or GAN (ModelRef) is held under its own lock instead; a VAE file holds the device."""
        ref = as_ref(checkpoint)
        if ref.kind in ZOO_KINDS:
            with self._use_zoo(ref) as loaded:
                yield loaded
            return
        from_file = {VAE_FILE: self._use_vae_file, UPSCALER: self._use_upscaler,
                     FACE_RESTORER: self._use_face_restorer}.get(ref.kind)
        if from_file is not None:  # these hold the device too, in the same line
            with from_file(ref, cancelled, owner, key) as loaded:
                yield loaded
            return
        info = self.completed(self.resolve(ref.name), ref.modules)
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
                    with self._holding(model):
                        yield model
                finally:
                    with self._on_device_lock:
                        self.jobs_on_device -= 1
            finally:
                self.cache.release(model)
        finally:
            self.device_lock.release()

    @contextmanager
    def use_beside(self, checkpoint: str) -> Iterator[LoadedCheckpoint]:
        """A second checkpoint for a job that holds the device already (the refiner, beside the job's own):
        loaded or found in the cache, in use (never evicted) until the job leaves. It is not placed on the
        device here: the job places it when it needs it (cache.swap_in), within the budget."""
        model = self._cached_or_loaded(self.resolve(checkpoint))
        try:
            with self._holding(model):
                yield model
        finally:
            self.cache.release(model)

    def use_loras(self, model: LoadedCheckpoint, loras) -> dict[str, str]:
        """Make `model` (held by this job) compute with exactly these LoRAs (modules/networks/loras.LoraUse;
        none: the base model), attaching the ones its modules lack. Returns {name as written: short hash}
        for the infotext."""
        weights = [LoraWeights(lora.name, lora.path, self.lora_hash(lora.path), lora.te_weight, lora.unet_weight)
                   for lora in loras]
        self.loras.apply(model.pipe, weights)
        return {w.name: w.sha256[:SHORT_HASH_DIGITS] for w in weights}

    def lora_hash(self, path) -> str:
        """A1111's hash of a LoRA file, computed once per file version."""
        return self.registry.hash_cache.file_hash(path, "lora", lora_sha256)

    def completed(self, info: CheckpointInfo, modules: tuple[str, ...] = ()) -> CheckpointInfo:
        """`info` with the component files it lacks paired in from `modules` (names in models/VAE and
        models/text_encoder); BadModelFile names what is still missing, InvalidRequest a file that fits nothing."""
        if not modules and not info.architecture.missing:
            return info
        return complete(info, [self.component_files.find(name) for name in dict.fromkeys(modules)])

    def load(self, checkpoint: str | None) -> LoadedCheckpoint:
        """Load (or find in the cache) and place on the device, without running anything."""
        with self.use(checkpoint) as model:
            return model

    def unload(self, title: str | None = None) -> list[str]:
        """Drop one cached entry (by its title as listed, or a checkpoint's name) from every level of the
        cache; without a title, every checkpoint not in use (A1111's unload-checkpoint: free the memory
        models take). Returns the titles kept because in use."""
        if not title:
            return self.cache.unload_all(kinds=(CHECKPOINT,))
        with self.cache.lock:
            key = next((e.key for e in self.cache.entries.values() if e.title == title), None)
        self.cache.unload(key or self._model_key(self.registry.find(title)))
        return []

    def unload_all(self) -> list[str]:
        """Drop everything not in use (every kind, data too); returns the titles kept."""
        return self.cache.unload_all()

    def cached_models(self) -> list[dict]:
        """Every cached entry, most recently used first, with its kind (checkpoint, beta_vae, gan, vae_file,
        upscaler, face_restorer, preview, lpips, data)."""
        return self.cache.listing()

    def cache_totals(self) -> dict:
        return {**self.cache.totals(), "device": str(self.devices.device)}

    @contextmanager
    def _use_zoo(self, ref: ModelRef) -> Iterator[LoadedModule]:
        """A β-VAE or GAN, under its own lock: these are small and quick, so browsing them stays
        interactive while a long Stable Diffusion job holds the device."""
        registry = self.zoo_registry
        try:
            info = registry.find(ref.kind, ref.name)
        except ModelNotFound:
            registry.scan()  # a file copied in since the last scan
            info = registry.find(ref.kind, ref.name)
        entry = self._module_entry(info.kind, _zoo_key(info), info, info.title,
                                   lambda: load_zoo_model(info.kind, info.path), info.path.stat().st_size)
        try:
            with self._state_lock:
                lock = self._module_locks.setdefault(entry.key, threading.Lock())
            with lock:
                self.cache.place_on_device(entry)
                with self._holding(entry):
                    yield LoadedModule(info, entry.module)
        finally:
            self.cache.release(entry)

    @contextmanager
    def vae_file_for_job(self, name: str) -> Iterator[object]:
        """A VAE file's module on the device, for a job that holds the device already with its checkpoint
        (the sd_vae option): cached like any VAE file, and never evicted while the job uses it."""
        with self._vae_file(self.vae_files.find(name)) as entry:
            yield entry.module

    def _vae_file(self, vae_file):
        dtype = self.devices.vae_dtype
        return self._file_model(VAE_FILE, f"vae_file:{vae_file.stamp}|{dtype}", vae_file, vae_file.name,
                                lambda: load_vae_file(vae_file.path, dtype), vae_file.size)

    @contextmanager
    def _use_vae_file(self, ref: ModelRef, cancelled, owner, key) -> Iterator[LoadedModule]:
        """A VAE file of models/VAE, on the device while the job holds it."""
        vae_file = self.vae_files.find(ref.name or "")
        if not self.device_lock.acquire(cancelled, owner, key):
            raise Interrupted()
        try:
            with self._vae_file(vae_file) as entry, self._holding(entry):
                yield LoadedModule(vae_file, entry.module)
        finally:
            self.device_lock.release()

    @contextmanager
    def upscaler_model(self, name: str) -> Iterator[object]:
        """An upscaler file's spandrel model on the device, cached, never evicted while the caller holds it.
        For a job that holds the device already (hires fix inside txt2img); anyone else goes through
        use(ModelRef(UPSCALER, name))."""
        with self._upscaler(self.upscaler_files.find(name)) as entry:
            yield entry.module

    def _upscaler(self, upscaler):
        return self._file_model(UPSCALER, f"upscaler:{upscaler.stamp}", upscaler, upscaler.name,
                                lambda: load_upscaler(upscaler.path), upscaler.size, spandrel=True)

    @contextmanager
    def perceptual_model(self) -> Iterator[object | None]:
        """The VGG16 perceptual (LPIPS) network of models/LPIPS on the device, cached, never evicted while the
        caller holds it; None without a file there. Every file of the folder counts: lin weights may be apart."""
        files = self.lpips_files.scan()
        if not files:
            yield None
            return
        key = f"lpips:{[f.stamp for f in files]}"
        with self._file_model(LPIPS, key, files[0], f"VGG16 perceptual ({', '.join(f.name for f in files)})"[:80],
                              lambda: load_perceptual(files), sum(f.size for f in files)) as entry:
            yield entry.module

    @contextmanager
    def face_restorer_model(self, name: str) -> Iterator[object | None]:
        """A face restorer's spandrel model (GFPGAN) on the device, cached, never evicted while the caller holds
        it. For a job that holds the device already (txt2img, img2img, Extras); None when no file of that
        restorer is there now."""
        restorer = self.face_restorer_files.restorer(name)
        if restorer is None:
            yield None
            return
        with self._file_model(FACE_RESTORER, f"face_restorer:{restorer.stamp}", restorer, f"{name} ({restorer.name})",
                              lambda: load_face_restorer(restorer.path), restorer.size, spandrel=True) as entry:
            yield entry.module

    @contextmanager
    def _use_face_restorer(self, ref: ModelRef, cancelled, owner, key) -> Iterator["LoadedModule"]:
        """The device held for a job that restores faces (Extras without a model upscaler); the model itself
        is read when a face is found (face_restorer_model)."""
        if not self.device_lock.acquire(cancelled, owner, key):
            raise Interrupted()
        try:
            yield LoadedModule(self.face_restorer_files.restorer(ref.name or ""), None)
        finally:
            self.device_lock.release()

    @contextmanager
    def preview_decoder(self, method: str, latent) -> Iterator[object | None]:
        """The Approx NN or TAESD decoder for `latent` (a LatentFormat), on the device while the job that holds
        the device uses it; None when its file is not in models/VAE-approx (the log says so once)."""
        folder = self.preview_folder
        candidates = preview_decoders.files_for(folder, method, latent.approx_nn_file, latent.taesd_name) \
            if folder is not None else []
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            said = (method, latent.approx_nn_file, latent.taesd_name)
            if said not in self._said_missing:
                self._said_missing.add(said)
                names = ", ".join(c.name for c in candidates) or "no file for this model family"
                log.warning("%s preview: %s not in %s; showing Approx cheap previews instead", method, names,
                            folder if folder is not None else "models/VAE-approx")
            yield None
            return
        stat = path.stat()
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else stat.st_size
        dtype = self.devices.vae_dtype
        key = f"preview:{method}:{folder_walk.real_path(path)}|{stat.st_mtime_ns}|{size}|{latent.channels}|{dtype}"

        def load():
            model = preview_decoders.load(method, path, latent.channels)
            return model if dtype == torch.float32 else model.to(dtype=dtype)

        with self._file_model(PREVIEW, key, path, f"{method} preview ({path.name})", load, size) as entry:
            yield entry.module

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
            with self._upscaler(upscaler) as entry:
                yield LoadedModule(upscaler, entry.module)
        finally:
            self.device_lock.release()

    @contextmanager
    def _file_model(self, kind: str, key: str, info, title: str, load: Callable, file_bytes: int,
                    spandrel: bool = False) -> Iterator[CacheEntry]:
        """A model read from a file, from the cache or loaded into it (counted in its budget), on the device
        and in use while the caller holds it. `spandrel`: `load` gives a spandrel model; its .model holds
        the weights."""
        entry = self._module_entry(kind, key, info, title, load, file_bytes, spandrel)
        try:
            self.cache.place_on_device(entry)
            yield entry
        finally:
            self.cache.release(entry)

    def _module_entry(self, kind: str, key: str, info, title: str, load: Callable, file_bytes: int,
                      spandrel: bool = False) -> CacheEntry:
        """The cached entry of a model read from a file, loaded once (under the load lock) if need be;
        returned acquired (in use)."""
        with self._load_lock:
            entry = self.cache.get(key)
            if entry is not None:
                self.cache.acquire(entry)
                return entry
            self.cache.make_room(file_bytes)
            started = time.perf_counter()
            module = load()
            return self.cache.add_module(key, kind, info, title, module, time.perf_counter() - started,
                                         weights=module.model if spandrel else None)

    def cached_data(self, key: tuple, build: Callable[[], object], derived_from=None,
                    title: str | None = None) -> object:
        """Data derived from a model (a data set's encodings for the Latent map), built once per key and kept
        in the cache with the model it came from (`derived_from`; by default the one this thread is using):
        evicting that model drops the data too. `title`: how the Models tab names it."""
        entry_key = f"data:{key!r}"
        entry = self.cache.get(entry_key)
        if entry is not None:
            return entry.value
        parent = self._entry_of(derived_from) if derived_from is not None else self._innermost()
        value = build()
        title = title or (", ".join(str(part) for part in key) if isinstance(key, tuple) else str(key))[:80]
        self.cache.add_data(entry_key, title, value, data_bytes(value), parent.key if parent is not None else None)
        return value

    @contextmanager
    def _holding(self, entry: CacheEntry):
        held = self._held.__dict__.setdefault("entries", [])
        held.append(entry)
        try:
            yield
        finally:
            held.pop()

    def _entry_of(self, loaded) -> CacheEntry | None:
        """The cache entry of what use() yielded (a CachedModel is one; a LoadedModule holds its module)."""
        if isinstance(loaded, CacheEntry):
            return loaded
        with self.cache.lock:
            return next((e for e in self.cache.entries.values() if getattr(e, "module", None) is loaded.module), None)

    def _innermost(self) -> CacheEntry | None:
        held = getattr(self._held, "entries", None)
        return held[-1] if held else None

    def fp8_storage(self, info: CheckpointInfo) -> torch.dtype | None:
        """The fp8 dtype `info`'s denoiser is kept in (an fp8 file, or the fp8_storage option), else None."""
        setting = self.settings.get(fp8_storage.OPTION) if self.settings is not None else None
        return fp8_storage.storage_dtype(info, setting)

    def _model_key(self, info: CheckpointInfo) -> str:
        """The cache key of a checkpoint as it would load now: the fp8 storage is part of it, so turning the
        option on or off loads the checkpoint again."""
        fp8 = self.fp8_storage(info)
        return _key(info) + (f"|{str(fp8).removeprefix('torch.')}" if fp8 is not None else "")

    def _cached_or_loaded(self, info: CheckpointInfo) -> CachedModel:
        fp8 = self.fp8_storage(info)
        key = self._model_key(info)
        model = self.cache.get(key)
        if model is not None:
            self.cache.acquire(model)
            return model
        return self._load(info, key, fp8)

    def _load(self, info: CheckpointInfo, key: str, fp8: torch.dtype | None = None) -> CachedModel:
        self.cache.make_room(_size_on_disk(info))
        started = time.perf_counter()
        reused_before = self.cache.skeletons.reused  # loads run one at a time, under the device lock
        pipe = loader.load_pipeline(info, self.devices.dtype, self.offline, skeletons=self.cache.skeletons, fp8=fp8)
        pipe.set_progress_bar_config(disable=True)
        family = info.architecture.spec
        if self.devices.vae_dtype != self.devices.dtype:
            family.vae_of(pipe).to(dtype=self.devices.vae_dtype)
        if self.devices.channels_last:  # measured faster on this CPU (modules/cpu_speed.py): convolutions' layout
            for module in (family.denoiser_of(pipe), family.vae_of(pipe)):
                module.to(memory_format=torch.channels_last)
        if self.devices.fuse_qkv:  # measured faster on a CPU (modules/models/fused_qkv.py): the same weights, laid out as one
            fused_qkv.fuse(family.denoiser_of(pipe))
        if self.devices.compile:  # compiled at its first call, which the job's note and the Models tab show
            compiled.compile_module(family.denoiser_of(pipe), self.devices.compile, info.title)
        hashes = {name: self._component_hash(info, name, module) for name, module in pipeline_components(pipe).items()}
        model = self.cache.add(key, info, pipe, dict(pipe.scheduler.config), time.perf_counter() - started, hashes)
        model.reused_modules = self.cache.skeletons.reused - reused_before
        if self.devices.offload == "model":
            model.pipe.enable_model_cpu_offload(device=self.devices.device)
        elif self.devices.offload == "sequential":
            # Group offload: a block at a time on the device, streamed ahead where CUDA allows.
            model.pipe.enable_group_offload(onload_device=self.devices.device, offload_type="leaf_level",
                                            use_stream=self.devices.device.type == "cuda")
        if self.devices.offload != "none":
            weights_moved()
        log.info("loaded %s (%s) in %.1f s%s", info.title, info.architecture.label, model.load_seconds,
                 f", reusing {model.reused_modules} built modules" if model.reused_modules else "")
        for callback in self.on_model_loaded:
            callback(model)
        return model

    def _component_hash(self, info: CheckpointInfo, name: str, module) -> str:
        """Content hash of a component's weights, computed once per checkpoint version and dtype.

        The denoiser (UNet, transformer) is what makes a checkpoint itself, so it is keyed by the file's
        hash instead: hashing it (2-5 GB) would double a first load, to find sharing that almost never exists.
        The storage is in the key ("float8_e4m3fn+float32", "GGUF Q8_0+..."): an fp8 copy is another copy."""
        stored = module_dtypes(module)
        dtype = stored if "+" in stored or stored.startswith("GGUF") else f"torch.{stored}"
        if name == info.architecture.spec.denoiser and info.sha256:
            return f"{name}-of:{info.sha256}:{dtype}"
        cache_key = f"component:{info.sha256}:{name}:{dtype}"
        if getattr(info, "component_files", None) and name in info.component_files:  # from its own file, not the checkpoint's
            cache_key = f"component-file:{_file_stamp(info.component_files[name][0])}:{name}:{dtype}"
        known = self.registry.hash_cache.remembered(cache_key) if info.sha256 else None
        if known:
            return known
        digest = tensors_sha256([*module.named_parameters(), *module.named_buffers()])
        if info.sha256:
            self.registry.hash_cache.remember(cache_key, digest)
        return digest


def _key(info: CheckpointInfo) -> str:
    files = "".join(f"|{name}={_file_stamp(path)}" for name, (path, _) in sorted((info.component_files or {}).items()))
    return f"{info.path.resolve()}|{info.sha256}{files}"


def _file_stamp(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _zoo_key(info: ZooModelInfo) -> str:
    return f"{info.kind}:{info.path.resolve()}|{info.sha256}"


def _size_on_disk(info: CheckpointInfo) -> int:
    if info.path.is_dir():
        return sum(f.stat().st_size for f in folder_walk.files(info.path, (".safetensors", ".bin")))
    return info.path.stat().st_size
