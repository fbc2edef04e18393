"""The one cache of weights: checkpoints, β-VAEs, GANs, VAE files, upscalers, face restorers, preview
decoders, the LPIPS network, and data derived from them, within one budget in bytes (RAM) and, on a GPU, a
device budget for what is resident there.

- A component (UNet, transformer, VAE, text encoder, a zoo model) with the same weights as one already
  cached — by content hash — is shared, not loaded twice: two fine-tunes with the same VAE hold one VAE.
- Going onto the device copies each weight from its (pinned) RAM copy; leaving the device points the
  weights back at that RAM copy, so nothing is copied back.
- Which entry makes room is a policy's choice (cache_policy.py; least recently used by default). An
  entry in use is never evicted, nor moved off the device; data derived from a model goes with it.
  Evicting drops every reference, then collects garbage, so the memory really comes back. The evicted
  modules' skeletons (weights stripped) wait in `skeletons` for the next load of the same architecture.
On a CPU the device is the RAM: the device level is then empty and swaps cost nothing."""
from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from modules.compat import execution_device, remove_lora_layers
from modules.devices import DeviceConfig
from modules.models import compiled
from modules.models.cache_policy import CachePolicy, LeastRecentlyUsed
from modules.models.memory import module_bytes, module_device, module_dtypes, pipeline_components
from modules.models.skeletons import SkeletonPool

CHECKPOINT, DATA = "checkpoint", "data"

_placements = 0  # counts every move of cached weights between RAM and the device, and every offload set up


def weights_moved() -> None:
    """Cached weights moved (or offload hooks were set up): execution devices found before may be wrong now."""
    global _placements
    _placements += 1


class ModelInUse(RuntimeError):
    """Asked to unload a model that a running job is using."""


@dataclass(eq=False)
class Component:
    """One weight-holding module, shared by every cached entry whose weights are identical."""
    module: torch.nn.Module
    content_hash: str
    bytes: int
    users: set[str] = field(default_factory=set)
    # The RAM copy of each weight, paired with its tensor, while the module lives on the device. Paired by
    # object, not by order: a LoRA adapter attached on the device adds tensors in the middle of the order.
    host_tensors: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    @property
    def on_device(self) -> bool:
        return self.host_tensors is not None


@dataclass(eq=False, kw_only=True)
class CacheEntry:
    """Anything the cache holds, by key: its weights (components), or data derived from another entry."""
    key: str
    kind: str  # "checkpoint", "beta_vae", "gan", "vae_file", "upscaler", "face_restorer", "preview", "lpips", "data"
    title: str
    components: dict[str, Component] = field(default_factory=dict)
    parent: str | None = None  # the key of the entry this one was derived from: it goes with it
    data_bytes: int = 0
    load_seconds: float = 0.0
    last_used: float = field(default_factory=time.time)
    in_use: int = 0
    last_swap_seconds: float | None = None

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.components.values()) + self.data_bytes

    @property
    def on_device(self) -> bool:
        return bool(self.components) and all(c.on_device for c in self.components.values())


@dataclass(eq=False, kw_only=True)
class CachedModel(CacheEntry):
    """A checkpoint in the cache; jobs get it from the manager while they hold the device."""
    info: object  # CheckpointInfo
    pipe: object
    scheduler_config: dict
    devices: DeviceConfig
    reused_modules: int = 0  # modules its load took from the skeleton pool instead of building
    # (pipe, placement, device): diffusers finds the execution device by walking every module of every component
    # (~2 ms on a small UNet on a CPU), so it is found once per pipe object and placement of the weights
    known_device: tuple | None = field(default=None, init=False, repr=False)

    @property
    def execution_device(self) -> torch.device:
        known = self.known_device
        if known is None or known[0] is not self.pipe or known[1] != _placements:
            known = self.known_device = (self.pipe, _placements, execution_device(self.pipe))
        return known[2]


@dataclass(eq=False, kw_only=True)
class CachedModule(CacheEntry):
    """One model read from a file: a β-VAE, GAN, VAE file, upscaler, face restorer, preview decoder, LPIPS."""
    info: object  # ZooModelInfo or ModelFile
    module: object  # a torch module, or a spandrel model around one (its weights are the component)


@dataclass(eq=False, kw_only=True)
class CachedData(CacheEntry):
    """Data built from a model (a data set's encodings), kept while its model is."""
    value: object


def _tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    # Parameters and buffers, each once (tied weights are one Parameter object).
    return [*module.parameters(), *module.buffers()]


class ModelCache:
    def __init__(self, devices: DeviceConfig, ram_budget: int, vram_budget: int | None,
                 policy: CachePolicy | None = None):
        self.devices = devices
        self.ram_budget = ram_budget
        self.vram_budget = vram_budget
        self.policy: CachePolicy = policy or LeastRecentlyUsed()
        self.entries: OrderedDict[str, CacheEntry] = OrderedDict()  # least recently used first
        self.components: dict[str, Component] = {}
        self.lock = threading.RLock()
        self.skeletons = SkeletonPool()
        # On a CPU the device is the RAM, so there is no device level; tests force one to check the
        # bookkeeping, with "device" copies that are fresh CPU tensors.
        self.force_device_level = False

    @property
    def models(self) -> OrderedDict[str, CachedModel]:
        """The checkpoints, least recently used first."""
        with self.lock:
            return OrderedDict((k, e) for k, e in self.entries.items() if isinstance(e, CachedModel))

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def ram_bytes(self) -> int:
        with self.lock:
            return (sum(c.bytes for c in self.components.values())
                    + sum(e.data_bytes for e in self.entries.values()))

    @property
    def device_bytes(self) -> int:
        with self.lock:
            return sum(c.bytes for c in self.components.values() if c.on_device)

    @property
    def uses_device_level(self) -> bool:
        return (self.devices.device.type != "cpu" or self.force_device_level) and self.devices.offload == "none"

    def totals(self) -> dict:
        """Bytes held and budgets, read together under the lock."""
        with self.lock:
            return {"ram_bytes": self.ram_bytes, "ram_budget": self.ram_budget,
                    "device_bytes": self.device_bytes, "device_budget": self.vram_budget}

    def listing(self) -> list[dict]:
        """Every entry, most recently used first, read under the lock (for the Models tab and the API)."""
        with self.lock:
            return [_row(entry, self.entries) for entry in reversed(self.entries.values())]

    # -- RAM level -----------------------------------------------------------------------------
    def get(self, key: str) -> CacheEntry | None:
        with self.lock:
            entry = self.entries.get(key)
            if entry is not None:
                self.entries.move_to_end(key)
                entry.last_used = time.time()
            return entry

    def make_room(self, needed_bytes: int) -> None:
        """Evict what the policy picks (never an entry in use) until `needed_bytes` more fit in RAM."""
        with self.lock:
            if self.ram_bytes + needed_bytes <= self.ram_budget:
                return
            candidates = [e for e in self.entries.values() if self._evictable(e)]
            for victim in self.policy.victims(candidates, needed_bytes, self.ram_budget):
                if self.ram_bytes + needed_bytes <= self.ram_budget:
                    return
                if self.entries.get(victim.key) is victim and self._evictable(victim):
                    self._evict(victim)

    def add(self, key: str, info, pipe, scheduler_config: dict, load_seconds: float,
            component_hashes: dict[str, str]) -> CachedModel:
        """Take ownership of a freshly loaded pipeline; it enters in use, so it cannot be evicted at once."""
        with self.lock:
            components, dropped, module = {}, False, None
            for name, module in pipeline_components(pipe).items():
                shared = self.components.get(component_hashes[name])
                if shared is not None:
                    setattr(pipe, name, shared.module)  # drop our duplicate; use the cached copy
                    dropped = True
                components[name] = self._adopt(key, component_hashes[name], module, shared)
            model = CachedModel(key=key, kind=CHECKPOINT, title=info.title, info=info, pipe=pipe,
                                scheduler_config=scheduler_config, devices=self.devices, components=components,
                                load_seconds=load_seconds, in_use=1)
            self.entries[key] = model
            del pipe, module
            if dropped:  # a full collection costs 0.15 s with a pipeline in memory: only when it frees something
                gc.collect()
            self.make_room(0)
            return model

    def add_module(self, key: str, kind: str, info, title: str, module, load_seconds: float,
                   weights: torch.nn.Module | None = None) -> CachedModule:
        """Take ownership of a model read from a file; it enters in use, like a checkpoint. `weights`: the
        torch module holding its weights, where `module` is not one itself (a spandrel model's .model)."""
        with self.lock:
            component = self._adopt(key, f"{kind}:{key}", module if weights is None else weights, None)
            entry = CachedModule(key=key, kind=kind, title=title, info=info, module=module,
                                 components={"module": component}, load_seconds=load_seconds, in_use=1)
            self.entries[key] = entry
            self.make_room(0)
            return entry

    def add_data(self, key: str, title: str, value, size: int, parent: str | None) -> CachedData:
        """Keep `value` (of `size` bytes) until its parent entry, or itself, is evicted."""
        with self.lock:
            self.make_room(size)
            if parent is not None and parent not in self.entries:
                parent = None  # its model is gone already: the data stands alone
            entry = CachedData(key=key, kind=DATA, title=title, value=value, data_bytes=size, parent=parent)
            self.entries[key] = entry
            return entry

    def _adopt(self, key: str, digest: str, module: torch.nn.Module, shared: Component | None) -> Component:
        if shared is None:
            self._pin(module)
            shared = self.components[digest] = Component(module, digest, module_bytes(module))
        shared.users.add(key)
        return shared

    def acquire(self, entry: CacheEntry) -> None:
        with self.lock:
            entry.in_use += 1
            entry.last_used = time.time()
            if self.entries.get(entry.key) is entry:
                self.entries.move_to_end(entry.key)

    def release(self, entry: CacheEntry) -> None:
        with self.lock:
            entry.in_use -= 1

    def unload(self, key: str) -> None:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return
            if not self._evictable(entry):
                raise ModelInUse(f"{entry.title} is in use by a running job; unload it when the job ends")
            self._evict(entry)

    def unload_all(self, kinds: tuple[str, ...] | None = None) -> list[str]:
        """Evict every entry (of `kinds`, else of any kind) not in use; returns the titles kept because in use."""
        with self.lock:
            kept = []
            for entry in list(self.entries.values()):
                if kinds is not None and entry.kind not in kinds or self.entries.get(entry.key) is not entry:
                    continue
                if self._evictable(entry):
                    self._evict(entry)
                elif entry.in_use:
                    kept.append(entry.title)
            self.skeletons.clear()  # back to a clean start: the next load builds afresh
            return kept

    def _children(self, entry: CacheEntry) -> list[CacheEntry]:
        return [e for e in self.entries.values() if e.parent == entry.key]

    def _evictable(self, entry: CacheEntry) -> bool:
        return entry.in_use == 0 and all(self._evictable(child) for child in self._children(entry))

    def _evict(self, entry: CacheEntry) -> None:
        for child in self._children(entry):
            self._evict(child)
        self.entries.pop(entry.key, None)
        collect = False
        for component in entry.components.values():
            component.users.discard(entry.key)
            if not component.users:
                if component.on_device:
                    self._to_host(component)
                remove_lora_layers(component.module)  # as loaded again, for the skeleton pool
                self.components.pop(component.content_hash, None)
                # Offload hooks stay on a module: never reuse those. A kept skeleton's weights are
                # dropped right here; anything else may sit in reference cycles until collected.
                if self.devices.offload != "none" or not self.skeletons.keep(component.module):
                    collect = True
        entry.components.clear()
        for name in ("pipe", "module", "value"):
            if hasattr(entry, name):
                setattr(entry, name, None)
        del entry
        if collect:  # 0.15 s with a pipeline in memory
            gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- device level --------------------------------------------------------------------------
    def place_on_device(self, entry: CacheEntry) -> float:
        """Make `entry` resident on the device within the VRAM budget; returns the seconds it took."""
        if not self._placed(entry):
            return 0.0
        started = time.perf_counter()
        # Not as inference tensors, though a job places a module it needs midway (an upscaler, a preview
        # decoder) inside its inference mode: GAN projection takes gradients through the LPIPS network.
        with self.lock, torch.inference_mode(False):
            missing = [c for c in entry.components.values() if not c.on_device]
            needed = sum(c.bytes for c in missing)
            if self.vram_budget is not None and missing and self.device_bytes + needed > self.vram_budget:
                resident = [e for e in self.entries.values()
                            if e is not entry and e.in_use == 0 and any(c.on_device for c in e.components.values())]
                for other in self.policy.victims(resident, needed, self.vram_budget):
                    if self.device_bytes + needed <= self.vram_budget:
                        break
                    self._leave_device(other, keep=entry)
            for component in missing:
                self._to_device(component)
            if missing and self.devices.device.type == "cuda":
                torch.cuda.synchronize(self.devices.device)
        entry.last_swap_seconds = time.perf_counter() - started
        return entry.last_swap_seconds

    def swap_in(self, entry: CacheEntry, leaving: CacheEntry, names: tuple[str, ...]) -> float:
        """Place `entry` on the device (as place_on_device) for a job that holds `leaving` too (the refiner
        beside the job's checkpoint): where `entry` does not fit beside what is there, `leaving`'s components
        `names`, done with for now though their entry is in use, go back to their RAM copy first (re-pointed,
        nothing copied). The job swaps them back the same way when it needs them again."""
        if not self._placed(entry):
            return 0.0
        with self.lock, torch.inference_mode(False):  # a job's inference mode must not mark the weights
            missing = [c for c in entry.components.values() if not c.on_device]
            needed = sum(c.bytes for c in missing)
            if self.vram_budget is not None and missing and self.device_bytes + needed > self.vram_budget:
                ours = set(map(id, entry.components.values()))
                for name in names:
                    component = leaving.components.get(name)
                    if component is not None and component.on_device and id(component) not in ours:
                        self._to_host(component)
            return self.place_on_device(entry)

    def _placed(self, entry: CacheEntry) -> bool:
        """Checkpoints move only without --medvram/--lowvram (diffusers' offload hooks move them then);
        small modules (zoo models, VAE files) always run on the device."""
        if isinstance(entry, CachedModel):
            return self.uses_device_level
        return self.devices.device.type != "cpu" or self.force_device_level

    def _leave_device(self, entry: CacheEntry, keep: CacheEntry) -> None:
        in_keep = set(map(id, keep.components.values()))
        in_use = {id(c) for e in self.entries.values() if e.in_use for c in e.components.values()}
        for component in entry.components.values():
            if component.on_device and id(component) not in in_keep and id(component) not in in_use:
                self._to_host(component)

    def _pin(self, module: torch.nn.Module) -> None:
        """Page-locked RAM copies make host→GPU copies fast and asynchronous."""
        if self.uses_device_level and self.devices.device.type == "cuda":
            for t in _tensors(module):
                t.data = t.data.pin_memory()

    def _to_device(self, component: Component) -> None:
        weights_moved()
        tensors = _tensors(component.module)
        component.host_tensors = [(t, t.data) for t in tensors]
        for t in tensors:
            t.data = t.data.to(self.devices.device, non_blocking=True, copy=True)

    def _to_host(self, component: Component) -> None:
        weights_moved()
        for t, host in component.host_tensors:
            t.data = host  # re-point at the RAM copy: no copy back
        component.host_tensors = None

    def weights_changed(self, module: torch.nn.Module) -> None:
        """A module's set of weights changed in place (a LoRA adapter attached or removed, by
        modules/models/lora_adapters.py): count its bytes again and, while it is on the device, give new
        weights their RAM copy and forget removed ones, so leaving the device stays a re-pointing."""
        with self.lock:
            for component in self.components.values():
                if component.module is not module:
                    continue
                component.bytes = module_bytes(module)
                if component.host_tensors is None:
                    continue
                current = _tensors(module)
                alive = {id(t) for t in current}
                pairs = [(t, host) for t, host in component.host_tensors if id(t) in alive]
                known = {id(t) for t, _ in pairs}
                for t in current:
                    if id(t) not in known:
                        host = t.data.to("cpu", copy=True)
                        pairs.append((t, host.pin_memory() if self.devices.device.type == "cuda" else host))
                component.host_tensors = pairs


def _row(entry: CacheEntry, entries: dict) -> dict:
    parent = entries.get(entry.parent) if entry.parent else None
    return {
        "title": entry.title,
        "kind": entry.kind,
        "architecture": _architecture(entry, parent),
        "where": "device" if entry.on_device else "RAM",
        "bytes": entry.bytes,
        "in_use": entry.in_use > 0,
        "last_used": entry.last_used,
        "load_seconds": entry.load_seconds,
        "swap_seconds": entry.last_swap_seconds,
        "reused_modules": getattr(entry, "reused_modules", 0),
        "compile_seconds": _compile_seconds(entry),
        "shared_components": sorted(n for n, c in entry.components.items() if len(c.users) > 1),
        "components": [_component_row(name, component) for name, component in entry.components.items()],
    }


def _compile_seconds(entry: CacheEntry) -> float | None:
    """--compile: the seconds its denoiser's calls spent compiling so far (None: nothing of it compiled)."""
    forwards = [f for c in entry.components.values() if (f := compiled.compiled_forward(c.module)) is not None]
    return round(sum(f.warmup_seconds for f in forwards), 2) if forwards else None


def _component_row(name: str, component: Component) -> dict:
    """One weight-holding part of an entry, by its pipeline name (unet, transformer, text_encoder_3 ...)."""
    return {"name": name, "dtype": module_dtypes(component.module), "device": module_device(component.module),
            "bytes": component.bytes, "shared": len(component.users) > 1}


def _architecture(entry: CacheEntry, parent: CacheEntry | None) -> str:
    if isinstance(entry, CachedModel):
        return entry.info.architecture.label
    if isinstance(entry, CachedData):
        return f"from {parent.title}" if parent is not None else ""
    if entry.kind in ("upscaler", "face_restorer"):
        return entry.module.architecture.name  # spandrel's: ESRGAN, SwinIR, GFPGAN ...
    return {"beta_vae": "β-VAE", "gan": "GAN", "vae_file": "VAE", "preview": "preview decoder",
            "lpips": "VGG16 (LPIPS)"}.get(entry.kind, entry.kind)
