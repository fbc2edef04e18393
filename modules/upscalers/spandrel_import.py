"""Importing spandrel where torchvision's compiled ops cannot load.

spandrel imports torchvision (two of its architectures use torchvision's Python transforms). PyPI's
torchvision wheels are built against CUDA torch; with a CPU-only torch their compiled library does not
load, and torchvision's import then stops at registering fake kernels for its `nms`/`qnms` ops, whose
schemas only that library defines. Defining those two schemas first lets the pure-Python parts import;
the ops themselves stay unusable (no upscaler calls them), and nothing changes where the library loads."""
from __future__ import annotations

import sys
import threading

_lock = threading.Lock()
_library = None  # kept alive: a torch.library.Library drops its definitions when collected


def import_spandrel():
    """The spandrel module."""
    with _lock:
        try:
            import spandrel
        except RuntimeError as e:
            if "torchvision::" not in str(e):
                raise
            _define_torchvision_schemas()
            import spandrel
        return spandrel


def _define_torchvision_schemas() -> None:
    global _library
    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # the half-imported package
    if _library is None:
        _library = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            if not torch._C._dispatch_has_kernel(f"torchvision::{op}") and not _has_schema(op):
                _library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def _has_schema(op: str) -> bool:
    import torch

    try:
        getattr(torch.ops.torchvision, op)
        return True
    except (AttributeError, RuntimeError):
        return False
