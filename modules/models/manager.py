"""The pipeline manager: the only owner of model weights.

This first version keeps one checkpoint on the device and releases the previous one when another
is asked for. Jobs take the device in arrival order, one at a time."""
from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from modules.devices import DeviceConfig
from modules.errors import ModelNotFound
from modules.models import loader
from modules.models.fifo_lock import FifoLock
from modules.models.registry import CheckpointInfo, Registry

log = logging.getLogger(__name__)


@dataclass
class LoadedCheckpoint:
    info: CheckpointInfo
    pipe: object  # a diffusers StableDiffusionPipeline or StableDiffusionXLPipeline
    scheduler_config: dict  # the checkpoint's own scheduler config; samplers are built from it per job
    load_seconds: float
    devices: DeviceConfig

    @property
    def execution_device(self) -> torch.device:
        return self.pipe._execution_device


class PipelineManager:
    def __init__(self, registry: Registry, devices: DeviceConfig, offline: bool = False):
        self.registry = registry
        self.devices = devices
        self.offline = offline
        self.device_lock = FifoLock()
        self._state_lock = threading.Lock()
        self._current: LoadedCheckpoint | None = None
        self.default_checkpoint: str | None = None  # a title; settings and --ckpt set it
        self.on_model_loaded: list[Callable[[LoadedCheckpoint], None]] = []

    @property
    def current(self) -> LoadedCheckpoint | None:
        return self._current

    def resolve(self, checkpoint: str | None) -> CheckpointInfo:
        """The checkpoint a job will use: the one it names, else the default, else what is loaded, else the first."""
        if checkpoint:
            return self.registry.find(checkpoint)
        for fallback in (self.default_checkpoint, self._current and self._current.info.title):
            if fallback:
                try:
                    return self.registry.find(fallback)
                except ModelNotFound:
                    continue
        usable = self.registry.usable()
        if not usable:
            raise ModelNotFound("checkpoint", "(none)") from None
        return usable[0]

    @contextmanager
    def use(self, checkpoint: str | None) -> Iterator[LoadedCheckpoint]:
        """Hold the device with `checkpoint` loaded on it for the duration of one job."""
        info = self.resolve(checkpoint)
        with self.device_lock:
            yield self._ensure_loaded(info)

    def load(self, checkpoint: str | None) -> LoadedCheckpoint:
        info = self.resolve(checkpoint)
        with self.device_lock:
            return self._ensure_loaded(info)

    def unload(self) -> None:
        with self.device_lock:
            self._release()

    def _ensure_loaded(self, info: CheckpointInfo) -> LoadedCheckpoint:
        current = self._current
        if current is not None and current.info.path == info.path and current.info.sha256 == info.sha256:
            return current
        self._release()
        started = time.perf_counter()
        pipe = loader.load_pipeline(info, self.devices.dtype, self.offline)
        pipe.set_progress_bar_config(disable=True)
        self._place(pipe)
        loaded = LoadedCheckpoint(info, pipe, dict(pipe.scheduler.config), time.perf_counter() - started, self.devices)
        with self._state_lock:
            self._current = loaded
        log.info("loaded %s (%s) in %.1f s", info.title, info.architecture.label, loaded.load_seconds)
        for callback in self.on_model_loaded:
            callback(loaded)
        return loaded

    def _place(self, pipe) -> None:
        if self.devices.offload == "model":
            pipe.enable_model_cpu_offload(device=self.devices.device)
        elif self.devices.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=self.devices.device)
        else:
            pipe.to(self.devices.device)
        if self.devices.vae_dtype != self.devices.dtype:
            pipe.vae.to(dtype=self.devices.vae_dtype)

    def _release(self) -> None:
        with self._state_lock:
            previous, self._current = self._current, None
        if previous is None:
            return
        del previous
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
