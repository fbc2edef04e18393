"""Measuring memory: bytes held by modules and data, process RSS, and default budgets."""
from __future__ import annotations

import dataclasses
import sys

import psutil
import torch

from modules.compat import gguf_type_name

GB = 1024**3


def pipeline_components(pipe) -> dict[str, torch.nn.Module]:
    """The weight-holding parts of a pipeline, by their diffusers names: whatever `pipe.components` lists
    (unet or transformer, vae, text encoders, image encoder ...), not a list that a new family outgrows."""
    return {name: module for name, module in dict(pipe.components).items() if isinstance(module, torch.nn.Module)}


def tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if t.device.type == "meta":
            continue
        key = (t.untyped_storage().data_ptr(), t.device)
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def module_bytes(module: torch.nn.Module) -> int:
    return tensor_bytes([*module.parameters(), *module.buffers()])


def module_dtypes(module: torch.nn.Module) -> str:
    """The dtypes a module's weights are stored in, largest share first ("float16", "float8_e4m3fn+bfloat16",
    "GGUF Q8_0+float32": a GGUF weight by its quantisation type, not the bytes holding it).
    Parameters only, where there are any: a text encoder's int64 position ids are no weights."""
    totals: dict[str, int] = {}
    for t in [*module.parameters()] or [*module.buffers()]:
        gguf_type = gguf_type_name(t)
        name = f"GGUF {gguf_type}" if gguf_type else str(t.dtype).removeprefix("torch.")
        totals[name] = totals.get(name, 0) + t.numel() * t.element_size()
    return "+".join(name for name, _ in sorted(totals.items(), key=lambda kv: -kv[1]))


def module_device(module: torch.nn.Module) -> str:
    """Where a module's weights are now ("cuda:0", "cpu"; "cpu+cuda:0" while offloading moves part of it)."""
    devices = dict.fromkeys(str(t.device) for t in [*module.parameters(), *module.buffers()])
    return "+".join(devices) or "-"


def data_bytes(value, _seen: set | None = None) -> int:
    """About how many bytes a value built from a model holds: arrays and tensors exactly, the rest roughly."""
    seen = set() if _seen is None else _seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        return value.untyped_storage().nbytes() if value.device.type != "meta" else 0
    if hasattr(value, "nbytes") and isinstance(getattr(value, "nbytes"), int):  # numpy arrays
        return value.nbytes
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(data_bytes(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return sum(data_bytes(k, seen) + data_bytes(v, seen) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sys.getsizeof(value) + sum(data_bytes(v, seen) for v in value)
    return sys.getsizeof(value)


def rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def total_ram_bytes() -> int:
    return psutil.virtual_memory().total


def default_ram_budget() -> int:
    """Room for cached models: what is left after 4 GB for the app and the OS, at least 2 GB."""
    return max(total_ram_bytes() - 4 * GB, 2 * GB)


def default_vram_budget(device: torch.device) -> int | None:
    """Room for models on the GPU: all but 1.5 GB kept for activations. None when the device is the CPU."""
    if device.type != "cuda":
        return None
    total = torch.cuda.get_device_properties(device).total_memory
    return max(total - int(1.5 * GB), total // 2)
