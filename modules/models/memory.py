"""Measuring memory: bytes held by modules, process RSS, and default budgets."""
from __future__ import annotations

import psutil
import torch

GB = 1024**3
COMPONENT_NAMES = ("unet", "vae", "text_encoder", "text_encoder_2")


def pipeline_components(pipe) -> dict[str, torch.nn.Module]:
    """The weight-holding parts of a pipeline, by their diffusers names."""
    return {name: module for name in COMPONENT_NAMES
            if isinstance(module := getattr(pipe, name, None), torch.nn.Module)}


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
