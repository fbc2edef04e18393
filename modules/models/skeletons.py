"""Built module skeletons, kept for the next checkpoint of the same architecture.

Building SD 1.5's UNet, VAE and text encoder, even on the meta device, is about a fifth of a
cold load here (0.27 s of 1.2 s). When the cache evicts a checkpoint that the fast loader built,
its modules lose their weights (parameters and persistent buffers become meta tensors, so the
memory comes back) and wait here, keyed by class, config and dtype. The fast loader assigns the
next checkpoint's weights into a waiting skeleton instead of building a new one: what A1111 does
when it loads a checkpoint's weights into the model it already has."""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict

import torch

from modules.compat import non_persistent_buffers, own_buffers, own_parameters

KEY_ATTRIBUTE = "_zoo_skeleton_key"  # set by the fast loader on modules it built


def skeleton_key(class_path: str, config: dict, dtype: torch.dtype) -> str:
    """Modules with equal keys have the same parameters, shapes and code. Names starting with "_"
    (the source path, library versions) say where a config came from, not what it builds."""
    significant = {k: v for k, v in config.items() if not k.startswith("_") and k != "transformers_version"}
    digest = hashlib.sha256(json.dumps(significant, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{class_path}:{dtype}:{digest}"


def strip_weights(module: torch.nn.Module) -> None:
    """Parameters and persistent buffers become meta tensors; tied ones stay tied. Non-persistent
    buffers (e.g. CLIP's position ids) are not in a state dict, so they are kept as they are."""
    stripped: dict[int, torch.Tensor] = {}

    def meta_like(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in stripped:
            empty = torch.empty_like(t, device="meta")
            stripped[id(t)] = torch.nn.Parameter(empty, t.requires_grad) if isinstance(t, torch.nn.Parameter) else empty
        return stripped[id(t)]

    for owner in module.modules():
        parameters, buffers, kept = own_parameters(owner), own_buffers(owner), non_persistent_buffers(owner)
        for name, p in parameters.items():
            if p is not None:
                parameters[name] = meta_like(p)
        for name, b in buffers.items():
            if b is not None and name not in kept:
                buffers[name] = meta_like(b)


class SkeletonPool:
    """At most one skeleton per key and `max_skeletons` in all, the most recently kept first to stay."""

    def __init__(self, max_skeletons: int = 8):
        self.max_skeletons = max_skeletons
        self._waiting: OrderedDict[str, torch.nn.Module] = OrderedDict()
        self._lock = threading.Lock()
        self.reused = 0  # skeletons handed out, since start

    def keep(self, module: torch.nn.Module) -> bool:
        """Strip `module` and keep it, if the fast loader built it; False if it was not kept."""
        key = getattr(module, KEY_ATTRIBUTE, None)
        if key is None or self.max_skeletons < 1:
            return False
        strip_weights(module)
        with self._lock:
            self._waiting[key] = module
            self._waiting.move_to_end(key)
            while len(self._waiting) > self.max_skeletons:
                self._waiting.popitem(last=False)
        return True

    def take(self, key: str) -> torch.nn.Module | None:
        with self._lock:
            module = self._waiting.pop(key, None)
            if module is not None:
                self.reused += 1
            return module

    def clear(self) -> None:
        with self._lock:
            self._waiting.clear()

    def __len__(self) -> int:
        return len(self._waiting)
