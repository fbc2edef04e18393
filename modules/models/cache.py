"""The two-level model cache: checkpoints kept in RAM (LRU by bytes), and the ones resident on the device.

- A component (UNet, VAE, text encoder) with the same weights as one already cached — by content
  hash — is shared, not loaded twice: two fine-tunes with the same VAE hold one VAE.
- Going onto the device copies each weight from its (pinned) RAM copy; leaving the device points
  the weights back at that RAM copy, so nothing is copied back.
- A model in use is never evicted. Evicting drops every reference, then collects garbage, so the
  memory really comes back. The evicted modules' skeletons (weights stripped) wait in `skeletons`
  for the next load of the same architecture.
On a CPU the device is the RAM: the device level is then empty and swaps cost nothing."""
from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from modules.compat import execution_device
from modules.devices import DeviceConfig
from modules.models.memory import module_bytes, pipeline_components
from modules.models.registry import CheckpointInfo
from modules.models.skeletons import SkeletonPool


class ModelInUse(RuntimeError):
    """Asked to unload a model that a running job is using."""


@dataclass(eq=False)
class Component:
    """One weight-holding module, shared by every cached checkpoint whose weights are identical."""
    module: torch.nn.Module
    content_hash: str
    bytes: int
    users: set[str] = field(default_factory=set)
    host_tensors: list[torch.Tensor] | None = None  # the RAM copy, while the module lives on the device

    @property
    def on_device(self) -> bool:
        return self.host_tensors is not None


@dataclass(eq=False)
class CachedModel:
    """A checkpoint in the cache; jobs get it from the manager while they hold the device."""
    key: str
    info: CheckpointInfo
    pipe: object
    scheduler_config: dict
    devices: DeviceConfig
    components: dict[str, Component]
    load_seconds: float
    last_used: float = field(default_factory=time.time)
    in_use: int = 0
    last_swap_seconds: float | None = None
    reused_modules: int = 0  # modules its load took from the skeleton pool instead of building

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.components.values())

    @property
    def on_device(self) -> bool:
        return bool(self.components) and all(c.on_device for c in self.components.values())

    @property
    def execution_device(self) -> torch.device:
        return execution_device(self.pipe)


def _tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    # Parameters and buffers, each once (tied weights are one Parameter object).
    return [*module.parameters(), *module.buffers()]


class ModelCache:
    def __init__(self, devices: DeviceConfig, ram_budget: int, vram_budget: int | None):
        self.devices = devices
        self.ram_budget = ram_budget
        self.vram_budget = vram_budget
        self.models: OrderedDict[str, CachedModel] = OrderedDict()  # least recently used first
        self.components: dict[str, Component] = {}
        self.lock = threading.RLock()
        self.skeletons = SkeletonPool()
        # On a CPU the device is the RAM, so there is no device level; tests force one to check the
        # bookkeeping, with "device" copies that are fresh CPU tensors.
        self.force_device_level = False

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def ram_bytes(self) -> int:
        return sum(c.bytes for c in self.components.values())

    @property
    def device_bytes(self) -> int:
        return sum(c.bytes for c in self.components.values() if c.on_device)

    @property
    def uses_device_level(self) -> bool:
        return (self.devices.device.type != "cpu" or self.force_device_level) and self.devices.offload == "none"

    # -- RAM level -----------------------------------------------------------------------------
    def get(self, key: str) -> CachedModel | None:
        with self.lock:
            model = self.models.get(key)
            if model is not None:
                self.models.move_to_end(key)
                model.last_used = time.time()
            return model

    def make_room(self, needed_bytes: int) -> None:
        """Evict least recently used models (never one in use) until `needed_bytes` more fit in RAM."""
        with self.lock:
            for model in list(self.models.values()):
                if self.ram_bytes + needed_bytes <= self.ram_budget:
                    return
                if model.in_use == 0:
                    self._evict(model)

    def add(self, key: str, info: CheckpointInfo, pipe, scheduler_config: dict, load_seconds: float,
            component_hashes: dict[str, str]) -> CachedModel:
        """Take ownership of a freshly loaded pipeline; it enters in use, so it cannot be evicted at once."""
        with self.lock:
            components, dropped, module = {}, False, None
            for name, module in pipeline_components(pipe).items():
                digest = component_hashes[name]
                shared = self.components.get(digest)
                if shared is None:
                    self._pin(module)
                    shared = self.components[digest] = Component(module, digest, module_bytes(module))
                else:
                    setattr(pipe, name, shared.module)  # drop our duplicate; use the cached copy
                    dropped = True
                shared.users.add(key)
                components[name] = shared
            model = CachedModel(key, info, pipe, scheduler_config, self.devices, components, load_seconds, in_use=1)
            self.models[key] = model
            del pipe, module
            if dropped:  # a full collection costs 0.15 s with a pipeline in memory: only when it frees something
                gc.collect()
            self.make_room(0)
            return model

    def acquire(self, model: CachedModel) -> None:
        with self.lock:
            model.in_use += 1
            model.last_used = time.time()
            self.models.move_to_end(model.key)

    def release(self, model: CachedModel) -> None:
        with self.lock:
            model.in_use -= 1

    def unload(self, key: str) -> None:
        with self.lock:
            model = self.models.get(key)
            if model is None:
                return
            if model.in_use:
                raise ModelInUse(f"{model.info.title} is in use by a running job; unload it when the job ends")
            self._evict(model)

    def unload_all(self) -> list[str]:
        """Evict every model not in use; returns the titles kept because they are in use."""
        with self.lock:
            kept = []
            for model in list(self.models.values()):
                if model.in_use:
                    kept.append(model.info.title)
                else:
                    self._evict(model)
            self.skeletons.clear()  # back to a clean start: the next load builds afresh
            return kept

    def _evict(self, model: CachedModel) -> None:
        self.models.pop(model.key, None)
        collect = False
        for component in model.components.values():
            component.users.discard(model.key)
            if not component.users:
                if component.on_device:
                    self._to_host(component)
                self.components.pop(component.content_hash, None)
                # Offload hooks stay on a module: never reuse those. A kept skeleton's weights are
                # dropped right here; anything else may sit in reference cycles until collected.
                if self.devices.offload != "none" or not self.skeletons.keep(component.module):
                    collect = True
        model.components.clear()
        model.pipe = None
        del model
        if collect:  # 0.15 s with a pipeline in memory
            gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- device level --------------------------------------------------------------------------
    def place_on_device(self, model: CachedModel) -> float:
        """Make `model` resident on the device within the VRAM budget; returns the seconds it took."""
        if not self.uses_device_level:
            return 0.0
        started = time.perf_counter()
        with self.lock:
            missing = [c for c in model.components.values() if not c.on_device]
            needed = sum(c.bytes for c in missing)
            if self.vram_budget is not None:
                for other in list(self.models.values()):
                    if self.device_bytes + needed <= self.vram_budget:
                        break
                    if other is not model and other.in_use == 0:
                        self._leave_device(other, keep=model)
            for component in missing:
                self._to_device(component)
            if self.devices.device.type == "cuda":
                torch.cuda.synchronize(self.devices.device)
        model.last_swap_seconds = time.perf_counter() - started
        return model.last_swap_seconds

    def _leave_device(self, model: CachedModel, keep: CachedModel) -> None:
        in_keep = set(map(id, keep.components.values()))
        for component in model.components.values():
            if component.on_device and id(component) not in in_keep:
                self._to_host(component)

    def _pin(self, module: torch.nn.Module) -> None:
        """Page-locked RAM copies make host→GPU copies fast and asynchronous."""
        if self.uses_device_level and self.devices.device.type == "cuda":
            for t in _tensors(module):
                t.data = t.data.pin_memory()

    def _to_device(self, component: Component) -> None:
        tensors = _tensors(component.module)
        component.host_tensors = [t.data for t in tensors]
        for t in tensors:
            t.data = t.data.to(self.devices.device, non_blocking=True, copy=True)

    def _to_host(self, component: Component) -> None:
        for t, host in zip(_tensors(component.module), component.host_tensors):
            t.data = host  # re-point at the RAM copy: no copy back
        component.host_tensors = None
