"""LoRA adapters on cached pipelines: attached to the pipeline's own modules, never to a copy.

A job asks for LoRAs at weights (`LoraWeights`); under its hold on the device, `LoraAdapters.apply` attaches
each one that a module lacks (diffusers' LoRA loaders with the peft backend: kohya, A1111 and diffusers/PEFT
key layouts), then makes exactly the job's adapters active at the job's weights, and disables the rest (a
module whose adapters are all disabled computes exactly what it did without them). An adapter stays
attached after the job, under a name made of the file's hash, so switching between LoRAs costs setting
weights, not loading. At most MAX_ATTACHED stay on a module; the least recently used are removed, and a
module whose last adapter goes gets its own layers back (the very parameter objects it was loaded with).

Adapters live on the modules, not on a pipeline: two cached checkpoints that share a text encoder (the
cache shares identical components) see the same adapters on it, so what a module has is read from the
module itself. The cache is told whenever a module's weights change (bytes, RAM copies of device weights)."""
from __future__ import annotations

import inspect
import logging
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from modules.compat import (activate_adapters, delete_adapter, disable_adapters, keep_adapter_in,
                            lora_loadable_modules, module_adapters, remove_lora_layers)
from modules.errors import BadModelFile
from modules.models.lora_files import read_lora

log = logging.getLogger(__name__)

MAX_ATTACHED = 8  # adapters kept on one module between jobs (a job's own are never removed)


@dataclass(frozen=True)
class LoraWeights:
    """One LoRA as a job uses it."""
    name: str  # as the prompt wrote it (the infotext's "Lora hashes" key)
    path: Path
    sha256: str
    te_weight: float
    unet_weight: float

    @property
    def adapter(self) -> str:
        return adapter_name(self.sha256)


def adapter_name(sha256: str) -> str:
    return f"lora_{sha256[:16]}"


class LoraAdapters:
    """The LoRA adapters of every cached pipeline (one per model cache)."""

    def __init__(self, cache):
        self.cache = cache
        self.last_used: dict[str, float] = {}  # adapter -> when a job last asked for it
        self.parts: dict[str, frozenset[str]] = {}  # adapter -> the components its file has weights for
        self.loads = 0  # files read and attached (tests and the benchmark count them)
        self._lock = threading.Lock()  # jobs holding the device come one at a time; this guards the counters

    def apply(self, pipe, loras: list[LoraWeights]) -> None:
        """Make `pipe`'s modules compute with exactly `loras` at their weights (none: the base model)."""
        targets = _targets(pipe)
        wanted = {lora.adapter: lora for lora in loras}
        now = time.monotonic()
        for name, lora in wanted.items():
            self.last_used[name] = now
            missing = [c for c, module in targets.items() if name not in module_adapters(module)
                       and (name not in self.parts or c in self.parts[name])]
            if missing:
                self._attach(pipe, lora, missing)
        for module in targets.values():
            self._bound(module, set(wanted))
        unet = _unet_name(pipe)
        for component, module in targets.items():
            present = [name for name in wanted if name in module_adapters(module)]
            if present:
                weights = [wanted[n].unet_weight if component == unet else wanted[n].te_weight for n in present]
                activate_adapters(module, present, weights)
            elif module_adapters(module):
                disable_adapters(module)

    def remove_all(self, pipe) -> None:
        """Every adapter off `pipe`'s modules: each module as it was loaded."""
        for module in _targets(pipe).values():
            if module_adapters(module):
                remove_lora_layers(module)
                self.cache.weights_changed(module)

    def _attach(self, pipe, lora: LoraWeights, components: list[str]) -> None:
        state = read_lora(lora.path)
        unet_module = getattr(pipe, _unet_name(pipe))
        parameter = next(unet_module.parameters())
        dtype = _compute_dtype(unet_module)
        self.cache.make_room(sum(t.numel() * dtype.itemsize for t in state.values()))
        state = {k: v.to(parameter.device, dtype) if v.is_floating_point() else v for k, v in state.items()}
        # ComfyUI's and ai-toolkit's files name a layer's alpha without "lora" (diffusion_model.….alpha).
        if not all("lora" in key or key.endswith(".alpha") for key in state) or not any("lora" in k for k in state):
            raise BadModelFile(lora.path, "is not a LoRA: its keys do not name LoRA layers "
                                          "(lora_down/lora_up, lora_A/lora_B)")
        try:
            converted, alphas, metadata = _lora_state(pipe, state, unet_module.config)
        except Exception as e:  # noqa: BLE001 - a key layout diffusers cannot read: the file's fault
            raise BadModelFile(lora.path, f"is not a LoRA layout diffusers can read ({_reason(e)})") from None
        del state
        parts = frozenset(c for c in _targets(pipe) if any(key.startswith(f"{c}.") for key in converted))
        if not parts:
            raise BadModelFile(lora.path, f"has no weights for this checkpoint's {' or '.join(_targets(pipe))}")
        attached = []
        try:
            with warnings.catch_warnings():
                # peft warns on every adapter after the first that a module has several: that is the point here.
                warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
                for component in components:
                    if component in parts:
                        self._attach_one(pipe, component, converted, alphas, metadata, lora.adapter)
                        attached.append(component)
        except Exception as e:  # noqa: BLE001 - shapes or layer names that do not fit this checkpoint
            for component in components:  # the one that failed too: diffusers may leave its layers wrapped
                module = getattr(pipe, component)
                delete_adapter(module, lora.adapter)
                self._tidy(module)
            raise BadModelFile(lora.path, f"does not fit this checkpoint ({_reason(e)}): is it a LoRA for "
                                          "another model family (SD 1.x, SD 2.x, SDXL)?") from None
        finally:
            for component in components:
                self.cache.weights_changed(getattr(pipe, component))
        with self._lock:
            self.parts[lora.adapter] = parts
            self.loads += 1
        log.info("LoRA %s attached to %s", lora.path.name, ", ".join(attached))

    @staticmethod
    def _attach_one(pipe, component: str, converted, alphas, metadata, adapter: str) -> None:
        module = getattr(pipe, component)
        if component == "unet":
            pipe.load_lora_into_unet(converted, alphas, unet=module, adapter_name=adapter, metadata=metadata,
                                     _pipeline=pipe)
        elif component == _unet_name(pipe):  # a transformer (Z-Image): SD3's loaders take no alphas, FLUX's do
            options = dict(transformer=module, adapter_name=adapter, metadata=metadata, _pipeline=pipe)
            if "network_alphas" in inspect.signature(pipe.load_lora_into_transformer).parameters:
                options["network_alphas"] = alphas
            pipe.load_lora_into_transformer(converted, **options)
        else:
            pipe.load_lora_into_text_encoder(converted, alphas, text_encoder=module, prefix=component,
                                             adapter_name=adapter, metadata=metadata, _pipeline=pipe)
        if adapter not in module_adapters(module):
            raise ValueError(f"no layer of the {component} took its weights")
        keep_adapter_in(module, adapter, _compute_dtype(module))  # not fp8, where the module's weights are

    def _bound(self, module, keep: set[str]) -> None:
        names = module_adapters(module)
        spare = sorted((n for n in names if n not in keep), key=lambda n: self.last_used.get(n, 0.0))
        excess = len(names) - max(MAX_ATTACHED, len(keep))
        for name in spare[:max(0, excess)]:
            delete_adapter(module, name)
        if excess > 0:
            self._tidy(module)

    def _tidy(self, module) -> None:
        if not module_adapters(module):
            remove_lora_layers(module)
        self.cache.weights_changed(module)


def _targets(pipe) -> dict[str, torch.nn.Module]:
    return {name: getattr(pipe, name) for name in lora_loadable_modules(pipe) if getattr(pipe, name, None) is not None}


def _unet_name(pipe) -> str:
    """The denoiser as the pipeline's LoRA loader names it: its `unet_name` (SD 1.x/2.x, SDXL), else its
    `transformer_name` (Z-Image); the LoRA's unet weight applies to it."""
    return getattr(pipe, "unet_name", None) or getattr(pipe, "transformer_name", None) or "unet"


def _compute_dtype(module) -> torch.dtype:
    """The dtype the denoiser computes in, which its LoRA layers are kept in: its weights' own, or, for weights
    stored in fp8 (fp8_storage.py: cast layer by layer as they run), that of the layers kept as they are
    (norms, embeddings)."""
    stored = (torch.float8_e4m3fn, torch.float8_e5m2)
    dtypes = [p.dtype for p in module.parameters() if p.is_floating_point()]
    return next((d for d in dtypes if d not in stored), dtypes[0] if dtypes else torch.float32)


def _lora_state(pipe, state: dict, denoiser_config) -> tuple[dict, dict | None, dict | None]:
    """(state dict in diffusers' layout, network alphas, metadata) from the pipeline's own LoRA loader: SD's and
    SDXL's give alphas; the transformer families' (Z-Image) scale by them while converting and give none."""
    out = pipe.lora_state_dict(state, unet_config=denoiser_config, return_lora_metadata=True)
    if len(out) == 3:
        return out
    converted, metadata = out
    return converted, None, metadata


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]
