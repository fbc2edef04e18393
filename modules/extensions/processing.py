"""The GAN Sampler's scripts, until the gan capability runs through the runner (modules/capabilities).

Every other capability's scripts run through modules/capabilities/scripting.py; its names that
extensions import from here (resolve_call, ScriptFailed, JobPart) are kept here too."""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from modules.capabilities.scripting import (JobPart, Processing, ScriptArgs, ScriptFailed, call_hook, resolve_call,
                                            run_script)
from modules.extensions.callbacks import Callbacks
from modules.extensions.scripts import PostprocessImage, Script, ScriptCall
from modules.jobs import Job

__all__ = ["GanProcessing", "JobPart", "ScriptArgs", "ScriptFailed", "resolve_call", "run_gan"]


class GanProcessing:
    """A GAN Sampler job as a script sees it: p.generate(GanRequest) renders one, with the always-on
    hooks process(p), postprocess_image(p, pp) (before saving) and postprocess(p, result)."""

    tab = "gan"

    def __init__(self, request, job: Job, generate: Callable, callbacks: Callbacks | None = None,
                 outdir: Path | None = None, backend=None, scripts: ScriptArgs | None = None):
        self.request = request
        self.job = job
        self.backend = backend
        self.outdir = outdir
        self._generate = generate  # (request, job, hooks) -> GanResult
        self._callbacks = callbacks
        self._scripts = scripts or ScriptArgs()

    @property
    def script_args(self) -> ScriptArgs:
        return self._scripts

    def generate(self, request=None):
        """A GanResult for `request` (default: p.request), validated here, with the always-on hooks."""
        child = copy.copy(self)
        child.request = copy.copy(request or self.request)
        for script, args in self._scripts.always_on:
            call_hook(script, "process", child, *args)
        result = self._generate(child.request.validated(), self.job, _GanHooks(child))
        for script, args in self._scripts.always_on:
            call_hook(script, "postprocess", child, result, *args)
        return result

    image_saved = Processing.image_saved


class _GanHooks:
    """One GAN generation's hooks: the always-on scripts' per-image one, and on_image_saved."""

    def __init__(self, p: GanProcessing):
        self.p = p

    def postprocess_image(self, image: Image.Image, seed: int | None, index: int) -> Image.Image:
        pp = PostprocessImage(image, seed, index)
        for script, args in self.p.script_args.always_on:
            call_hook(script, "postprocess_image", self.p, pp, *args)
        return pp.image if isinstance(pp.image, Image.Image) else image

    def image_saved(self, image: Image.Image, path: Path, infotext: str) -> None:
        self.p.image_saved(image, path, infotext)


def run_gan(request, job: Job, call: ScriptCall | None, scripts: list[Script], generate: Callable,
            callbacks: Callbacks | None = None, outdir: Path | None = None, backend=None):
    """One GAN Sampler job, with its scripts: the selected one's run(p), else p.generate()."""
    resolved = resolve_call(scripts, call, "gan")
    p = GanProcessing(request, job, generate, callbacks, outdir, backend, resolved)
    if resolved.selected is None:
        return p.generate()
    script, args = resolved.selected
    output = run_script(script, p, args)
    return p.generate() if output is None else output
