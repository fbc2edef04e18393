"""How a txt2img job runs its scripts: the one path that the UI and the API both take (via Backend.txt2img).

    p = Processing(request copy)            what scripts see (A1111's `p`)
    selected script?  result = script.run(p, *script_args)    (p.generate(...) for each image it needs)
    else              result = p.generate()
    p.generate(request):
        always-on process(p)                may change p.request; it is validated again afterwards
        sampling, with per batch process_batch(...) and per image postprocess_image(...) before saving
        always-on postprocess(p, result)

A hook that raises is reported against its extension (Extensions tab and log) and skipped: the job
goes on. A selected script that raises fails the job with a message naming the script."""
from __future__ import annotations

import copy
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from PIL import Image

from modules.errors import InvalidRequest, UserError
from modules.extensions.callbacks import IMAGE_SAVED, Callbacks, ImageSaved
from modules.extensions.scripts import PostprocessImage, Script, ScriptCall, ScriptOutput
from modules.generation.batch_grid import add_batch_grid
from modules.generation.txt2img import GenerationHooks, Txt2ImgResult
from modules.generation.txt2img_request import Txt2ImgRequest
from modules.jobs import Interrupted, Job, Skipped

# (request, job, hooks) -> Txt2ImgResult: the normal generation on the device (Backend supplies it).
Generate = Callable[[Txt2ImgRequest, Job, GenerationHooks], Txt2ImgResult]


class ScriptFailed(UserError):
    """A selected script raised: the job fails, the traceback goes to the log and the Extensions tab."""


@dataclass
class ScriptArgs:
    """A job's scripts, resolved: the selected one (or None) and the always-on ones, each with its args."""
    selected: tuple[Script, list] | None = None
    always_on: list[tuple[Script, list]] = field(default_factory=list)


def resolve_call(scripts: list[Script], call: ScriptCall | None, tab: str) -> ScriptArgs:
    """Match the call's titles (case-insensitive, as A1111) against the loaded scripts of `tab`.
    Every enabled always-on script runs, with its defaults unless the call gives args."""
    call = call or ScriptCall()
    usable = [s for s in scripts if s.tab == tab and s.extension.enabled]
    by_name = {s.name: s for s in usable if not s.always_on}
    always_on = [s for s in usable if s.always_on]
    resolved = ScriptArgs()
    name = (call.script_name or "").strip().lower()
    if name and name != "none":
        if name not in by_name:
            choices = ", ".join(s.title() for s in by_name.values()) or "none are installed"
            raise InvalidRequest("script_name", f"unknown script {call.script_name!r}: one of {choices}")
        script = by_name[name]
        resolved.selected = (script, _args(script, call.script_args, "script_args"))
    given = {str(k).strip().lower(): v for k, v in (call.alwayson_scripts or {}).items()}
    known = {s.name for s in always_on}
    for title in given:
        if title not in known:
            choices = ", ".join(s.title() for s in always_on) or "none are installed"
            raise InvalidRequest("alwayson_scripts", f"unknown always-on script {title!r}: one of {choices}")
    for script in always_on:
        value = given.get(script.name, [])
        args = value.get("args", []) if isinstance(value, dict) else value
        resolved.always_on.append((script, _args(script, args, f"alwayson_scripts.{script.title()}.args")))
    return resolved


def _args(script: Script, args, field_name: str) -> list:
    if args is None:
        args = []
    if not isinstance(args, (list, tuple)):
        raise InvalidRequest(field_name, "must be a list of values, in the order of the script's controls")
    try:
        return script.args_with_defaults(args)
    except Exception as e:  # noqa: BLE001 - a script whose ui() raises: its defaults are unknown
        script.extension.add_error(f"{script.title()}: ui", e, traceback.format_exc())
        return list(args)


def call_hook(script: Script, hook: str, *args, **kwargs) -> Any:
    """Run one hook of one script; a bug in it is reported and skipped. Stopping (interrupt, skip)
    and a UserError (the script's own message to the user) go through."""
    try:
        return getattr(script, hook)(*args, **kwargs)
    except (Interrupted, Skipped, UserError):
        raise
    except Exception as e:  # noqa: BLE001
        script.extension.add_error(f"{script.title()}: {hook}", e, traceback.format_exc())
        return None


class Processing:
    """A txt2img job as a script sees it (A1111's `p`)."""

    def __init__(self, request: Txt2ImgRequest, job: Job, generate: Generate, scripts: ScriptArgs,
                 callbacks: Callbacks | None = None, outdir: Path | None = None, backend=None):
        self.request = request               # this job's own copy: process() may change it
        self.job = job
        self.backend = backend               # for scripts that need more (checkpoint titles, ...)
        self.outdir = outdir
        self.extra_generation_params: dict[str, Any] = {}  # added to every image's infotext
        self.tab = "txt2img"
        self._generate = generate
        self._scripts = scripts
        self._callbacks = callbacks

    @property
    def script_args(self) -> ScriptArgs:
        return self._scripts

    def copy(self, request: Txt2ImgRequest | None = None) -> "Processing":
        other = copy.copy(self)
        other.request = _copy_request(request or self.request)
        other.extra_generation_params = dict(self.extra_generation_params)
        return other

    def generate(self, request: Txt2ImgRequest | None = None, job: Job | None = None) -> Txt2ImgResult:
        """The normal generation of `request` (default: p.request), with the always-on hooks."""
        child = self.copy(request)
        for script, args in self._scripts.always_on:
            call_hook(script, "process", child, *args)
        child.request = child.request.validated()
        if hasattr(self.backend, "check_limits"):  # a script's request is bounded like the user's own
            self.backend.check_limits(child.request)
        result = self._generate(child.request, job or self.job, _Hooks(child))
        for script, args in self._scripts.always_on:
            call_hook(script, "postprocess", child, result, *args)
        return result

    def image_saved(self, image: Image.Image, path: Path, infotext: str) -> None:
        """Tell on_image_saved callbacks about a file a script wrote (the grid of X/Y/Z plot, say)."""
        if self._callbacks is not None:
            self._callbacks.run(IMAGE_SAVED, ImageSaved(image, Path(path), infotext, self.tab,
                                                          self.job.owner if self.job else None))


class JobPart:
    """One generation of several in a script's job (a cell of X/Y/Z plot): its batches are counted as
    batches `done` ... of `total` in the job's progress, and Interrupt/Skip reach it as usual."""

    def __init__(self, job: Job, done: int, total: int):
        self._job, self._done, self._total = job, done, total

    def start(self, batch_count: int, steps: int) -> None:
        job = self._job
        if job.state != "running":
            job.start(self._total, steps)
        job.batch_count, job.steps = self._total, steps

    def begin_batch(self, index: int) -> None:
        self._job.begin_batch(self._done + index)

    def __getattr__(self, name: str):  # report_step, set_preview, check, interrupt_requested ...
        return getattr(self._job, name)


class _Hooks(GenerationHooks):
    """The always-on scripts' hooks of one generation, bound to its Processing."""

    def __init__(self, p: Processing):
        self.p = p

    def process_batch(self, request, batch_number, prompts, seeds) -> None:
        for script, args in self.p.script_args.always_on:
            call_hook(script, "process_batch", self.p, *args, batch_number=batch_number, prompts=prompts, seeds=seeds)

    def postprocess_image(self, request, image, seed, index):
        pp = PostprocessImage(image, seed, index)
        for script, args in self.p.script_args.always_on:
            call_hook(script, "postprocess_image", self.p, pp, *args)
        return pp.image if isinstance(pp.image, Image.Image) else image

    def extra_infotext(self) -> dict:
        return self.p.extra_generation_params

    def image_saved(self, image, path, infotext) -> None:
        self.p.image_saved(image, path, infotext)


def run_txt2img(request: Txt2ImgRequest, job: Job, call: ScriptCall | None, scripts: list[Script],
                generate: Generate, callbacks: Callbacks | None = None, outdir: Path | None = None,
                backend=None) -> Txt2ImgResult:
    """One txt2img job, with its scripts. `request` is validated already."""
    resolved = resolve_call(scripts, call, "txt2img")
    p = Processing(_copy_request(request), job, generate, resolved, callbacks, outdir, backend)
    if resolved.selected is None:
        return add_batch_grid(p.generate(), outdir)  # a script's run() makes its own pictures
    script, args = resolved.selected
    try:
        output = _run_script(script, p, args, passthrough=(UserError, Interrupted))
    except Interrupted:
        return Txt2ImgResult(request)
    if output is None:
        return add_batch_grid(p.generate(), outdir)
    return as_txt2img_result(output, request)


def _run_script(script: Script, p, args: list, passthrough: tuple[type[BaseException], ...] = (UserError,)):
    """A selected script's run(); an error not in `passthrough` fails the job with a message naming
    the script, and the traceback goes to the Extensions tab."""
    try:
        return script.run(p, *args)
    except passthrough:
        raise
    except Exception as e:  # noqa: BLE001
        script.extension.add_error(f"{script.title()}: run", e, traceback.format_exc())
        raise ScriptFailed(f"{script.title()} failed: {type(e).__name__}: {e} (the traceback is in the log "
                           "and the Extensions tab)") from None


def as_txt2img_result(output, request: Txt2ImgRequest) -> Txt2ImgResult:
    if isinstance(output, Txt2ImgResult):
        return output
    if isinstance(output, (list, tuple)):
        output = ScriptOutput(images=list(output))
    images = list(getattr(output, "images", []) or [])
    infotexts = list(getattr(output, "infotexts", []) or [])
    infotexts += [str(i.info.get("parameters", "")) for i in images[len(infotexts):]]
    return Txt2ImgResult(request, images=images, infotexts=infotexts, seeds=list(getattr(output, "seeds", []) or []),
                         paths=list(getattr(output, "paths", []) or []))


def _copy_request(request: Txt2ImgRequest) -> Txt2ImgRequest:
    return Txt2ImgRequest(**{f.name: getattr(request, f.name) for f in fields(request)})


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
    output = _run_script(script, p, args)
    return p.generate() if output is None else output
