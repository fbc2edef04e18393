"""--compile: a checkpoint's denoiser (UNet or transformer) run through torch.compile.

The compiled function replaces the module's own `forward` on that module instance only, so everything that
holds the module (the cached pipeline, each job's pipeline view, the LoRA loaders, the refiner) uses it, and
the module stays the one the cache counts. Compiling happens at the first call of each new input shape or
module state (a LoRA attached, another batch size): that call's time is the warm-up, logged and kept on the
module (the Models tab's "Compile (s)", the job's note). Guards that no longer hold (a LoRA attached or
detached, fused projections, the Tiling option's padding) make torch compile again; past torch's recompile
limit it runs that frame eagerly, with the same numbers. A checkpoint evicted and loaded again into its
skeleton keeps its compiled forward.

The VAE is not compiled: it runs once per image (a decode is a small part of a job next to the denoiser's
steps), and the fp32 VAE retry decodes with a copy, which must not call the original's compiled forward."""
from __future__ import annotations

import functools
import logging
import threading
import time

import torch

from modules import compat

log = logging.getLogger(__name__)

ATTRIBUTE = "_zoo_compiled"


class CompiledForward:
    """The module's forward through torch.compile; times the calls in which torch compiled something."""

    def __init__(self, module: torch.nn.Module, backend: str, title: str):
        eager = type(module).forward.__get__(module)
        functools.update_wrapper(self, eager)  # inspect.signature(module.forward) still names its arguments
        self.compiled = torch.compile(eager, backend=backend)
        self.backend, self.title = backend, title
        self.warmup_seconds = 0.0   # all calls that compiled, together
        self.compiles = 0           # calls that compiled (the first one and each recompile)
        self.last_warmup_seconds: float | None = None
        self._lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        before = compat.frames_compiled()
        started = time.perf_counter()
        out = self.compiled(*args, **kwargs)
        if compat.frames_compiled() != before:
            seconds = time.perf_counter() - started
            with self._lock:
                self.warmup_seconds += seconds
                self.compiles += 1
                self.last_warmup_seconds = seconds
            log.info("torch.compile (%s) of %s: %s in %.1f s", self.backend, self.title,
                     "first compile" if self.compiles == 1 else f"recompile {self.compiles - 1}", seconds)
        return out


def compile_module(module: torch.nn.Module, backend: str, title: str) -> CompiledForward:
    """Make `module` run compiled (once: a module already compiled keeps its compiled forward)."""
    compiled = getattr(module, ATTRIBUTE, None)
    if compiled is None:
        compiled = CompiledForward(module, backend, title)
        module.forward = compiled
        setattr(module, ATTRIBUTE, compiled)
    compiled.title = title
    return compiled


def compiled_forward(module: torch.nn.Module | None) -> CompiledForward | None:
    return getattr(module, ATTRIBUTE, None) if module is not None else None


def is_compiled(module: torch.nn.Module | None) -> bool:
    return compiled_forward(module) is not None
