"""How a job runs its extension scripts, the same way for every capability (A1111's `p` and hooks).

    p = Processing(request copy)            what scripts see (A1111's `p`)
    selected script?  result = script.run(p, *script_args)    (p.generate(...) for each image it needs)
    else              result = p.generate()
    p.generate(request):
        always-on process(p)                may change p.request; it is validated again afterwards
        the capability's run, with hooks:   process_batch(p, ..., batch_number, prompts, seeds) per batch,
                                            postprocess_image(p, pp) per image, before it is saved
        always-on postprocess(p, result)

A hook that raises is reported against its extension (Extensions tab and log) and skipped: the job
goes on. A selected script that raises fails the job with a message naming the script."""
from __future__ import annotations

import copy
import datetime
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from modules import images as image_files, owners
from modules.capabilities.background_saves import BackgroundSaves
from modules.capabilities.base import SaveSpec
from modules.errors import InvalidRequest, UserError
from modules.extensions.callbacks import IMAGE_SAVED, Callbacks, ImageSaved
from modules.extensions.scripts import PostprocessImage, Script, ScriptCall
from modules.jobs import Interrupted, Job, Skipped
from modules.public_paths import shown

# (request, job, hooks) -> result: the capability's run on its model (the runner supplies it).
Generate = Callable[[Any, Job, "Hooks"], Any]


class ScriptFailed(UserError):
    """A selected script raised: the job fails, the traceback goes to the log and the Extensions tab."""


class ImageNotSaved(UserError):
    """Writing an image failed (a full disk): the image itself is in `.image`, so the user still gets it."""

    def __init__(self, message: str, image: Image.Image):
        super().__init__(message)
        self.image = image


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


def run_script(script: Script, p, args: list, passthrough: tuple[type[BaseException], ...] = (UserError,)):
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


class Processing:
    """A job as a script sees it (A1111's `p`), for every capability: p.tab says which."""

    def __init__(self, tab: str, request, job: Job, scripts: ScriptArgs, generate: Generate,
                 validate: Callable[[Any], Any], callbacks: Callbacks | None = None, outdir: Path | None = None,
                 backend=None):
        self.tab = tab
        self.request = request               # this job's own copy: process() may change it
        self.job = job
        self.backend = backend               # for scripts that need more (checkpoint titles, limits ...)
        self.outdir = outdir                 # the job owner's outputs folder
        self.extra_generation_params: dict[str, Any] = {}  # added to every image's infotext
        self._formats = image_formats(backend, job)  # the job's own, fixed now: (images, grids)
        self._scripts = scripts
        self._generate = generate
        self._validate = validate
        self._callbacks = callbacks

    def image_format(self, grid: bool = False) -> image_files.ImageFormat:
        return self._formats[1 if grid else 0]

    @property
    def script_args(self) -> ScriptArgs:
        return self._scripts

    def copy(self, request=None) -> "Processing":
        other = copy.copy(self)
        other.request = copy.copy(request if request is not None else self.request)
        other.extra_generation_params = dict(self.extra_generation_params)
        return other

    def generate(self, request=None, job: Job | None = None):
        """The normal generation of `request` (default: p.request), with the always-on hooks. `job`: a
        JobPart when a script makes several generations in one job."""
        child = self.copy(request)
        if job is not None:
            child.job = job
        for script, args in self._scripts.always_on:
            call_hook(script, "process", child, *args)
        child.request = self._validate(child.request)  # a script's request is bounded like the user's own
        result = self._generate(child.request, child.job, Hooks(child))
        for script, args in self._scripts.always_on:
            call_hook(script, "postprocess", child, result, *args)
        return result

    def image_saved(self, image: Image.Image, path: Path, infotext: str) -> None:
        """Tell on_image_saved callbacks about a file written (an image, or a script's grid)."""
        if self._callbacks is not None:
            self._callbacks.run(IMAGE_SAVED, ImageSaved(image, Path(path), infotext, self.tab,
                                                          self.job.owner if self.job else None))


class Hooks:
    """What a capability's run calls as it goes (A1111's names), bound to one generation's Processing."""

    def __init__(self, p: Processing):
        self.p = p
        self.saves: BackgroundSaves | None = None  # set by the runner while the job holds the device

    def process_batch(self, batch_number: int, prompts: list[str], seeds: list[int]) -> None:
        """Before each batch (a capability without batches: once, prompts=[])."""
        for script, args in self.p.script_args.always_on:
            call_hook(script, "process_batch", self.p, *args, batch_number=batch_number, prompts=prompts, seeds=seeds)

    def image_ready(self, image: Image.Image, infotext: str, seed: int | None, index: int,
                    save_to: SaveSpec | None) -> tuple[Image.Image, Path | None]:
        """An image is made: the always-on postprocess_image hooks may replace it, then it is saved where
        `save_to` says (None: not saved) and on_image_saved hears of it. Raises ImageNotSaved (with the
        final image) when the file cannot be written."""
        pp = PostprocessImage(image, seed, index)
        for script, args in self.p.script_args.always_on:
            call_hook(script, "postprocess_image", self.p, pp, *args)
        if isinstance(pp.image, Image.Image):
            image = pp.image
        path = self.save_image(image, infotext, save_to) if save_to is not None else None
        return image, path

    def save_image(self, image: Image.Image, infotext: str, save_to: SaveSpec) -> Path | None:
        """Save without the per-image hooks (a grid): outputs/<folder>/<date>/NNNNN-<stem>.png, with the
        infotext; None when the job has no outputs folder. Inside the runner's hold of the device the name is
        reserved now and the file written after the job leaves the device (`saves`, background_saves.py)."""
        if self.p.outdir is None:
            return None
        folder = Path(self.p.outdir) / save_to.folder / datetime.date.today().isoformat()
        what = f"seed {save_to.stem}" if isinstance(save_to.stem, int) else str(save_to.stem)
        failed = f"could not save {what} to {shown(folder)}"
        image_format = self.p.image_format(grid=save_to.folder.endswith("-grids"))
        extra = save_to.extra_text or None
        try:
            path = image_files.reserve_path(folder, save_to.stem, image_format)
            if self.saves is not None:
                self.saves.submit(path, lambda: image_files.write_image(image, path, infotext, extra, image_format),
                                  failed, lambda: self.p.image_saved(image, path, infotext))
                return path
            image_files.write_image(image, path, infotext, extra, image_format)
        except OSError as e:  # a full disk loses the file, never the image: the caller decides
            raise ImageNotSaved(f"{failed}: {e.strerror or e}", image) from None
        self.p.image_saved(image, path, infotext)
        return path

    def extra_infotext(self) -> dict:
        """What scripts added to every image's infotext (p.extra_generation_params)."""
        return self.p.extra_generation_params


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

    def __getattr__(self, name: str):  # report_step, set_preview, check, interrupt_requested, id, owner ...
        return getattr(self._job, name)


def image_formats(backend, job) -> tuple[image_files.ImageFormat, image_files.ImageFormat]:
    """The samples_format, grid_format and jpeg_quality options for the job's owner (their own with logins)."""
    settings = getattr(backend, "settings", None)
    if settings is None:
        return image_files.PNG, image_files.PNG
    user = owners.user_name(job.owner) if job is not None else None
    quality = settings.for_user("jpeg_quality", user)
    return (image_files.ImageFormat(settings.for_user("samples_format", user), quality),
            image_files.ImageFormat(settings.for_user("grid_format", user), quality))
