"""Importing spandrel without torchvision.

spandrel imports torchvision at start-up for two architectures that are not upscalers (LaMa inpainting and
RestoreFormer face restoration, which use its rotate/normalize transforms). This server does not install
torchvision: PyPI's wheels are built for CUDA torch and break beside the CPU torch build. So where
torchvision cannot be imported, spandrel is imported with a stand-in `torchvision.transforms.functional`
present only during that import: the two architectures get functions that raise if ever called, and the
stand-in is removed at once, so no other library mistakes it for torchvision. Upscaler architectures
(ESRGAN, Real-ESRGAN, SwinIR, DAT, ...) do not use torchvision. Where torchvision imports, nothing changes."""
from __future__ import annotations

import enum
import importlib
import sys
import threading
import types

_lock = threading.Lock()
STAND_IN = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


class _InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def _needs_torchvision(*args, **kwargs):
    raise RuntimeError("this model architecture needs torchvision, which this server does not install")


def import_spandrel():
    """The spandrel module."""
    with _lock:
        if "spandrel" in sys.modules:
            return sys.modules["spandrel"]
        try:
            import torchvision  # noqa: F401 - where it imports, spandrel uses the real one
        except (ImportError, RuntimeError):  # RuntimeError: a CUDA build beside CPU torch
            _forget("torchvision")
            return _import_with_stand_in()
        import spandrel
        return spandrel


def _forget(package: str) -> None:
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]


def _import_with_stand_in():
    # Libraries that note at import whether torchvision is there: noted now, before the stand-in exists.
    for module in ("diffusers.utils.import_utils", "transformers.utils.import_utils"):
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = _InterpolationMode
    functional.rotate = functional.normalize = _needs_torchvision
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional
    package = types.ModuleType("torchvision")
    package.transforms = transforms
    sys.modules.update(dict(zip(STAND_IN, (package, transforms, functional))))
    try:
        _forget("spandrel")  # a half-done earlier import
        import spandrel
        return spandrel
    finally:
        for name in STAND_IN:
            sys.modules.pop(name, None)
