"""The Script base class: what an extension's scripts/*.py subclass, as in A1111's modules.scripts.

A script is either *selectable* (it appears in the tab's Script dropdown and, when picked, its `run`
replaces the normal generation) or *always on* (`show` returns AlwaysVisible: its hooks run in every
job). `ui` returns Gradio components; their values reach `run` and the hooks as *args, in order.
From the API, the same values are `script_args` (selectable) or `alwayson_scripts[title].args`."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modules.extensions.metadata import Extension

TABS = ("txt2img", "img2img", "gan")


class AlwaysVisible:
    """Returned by `Script.show`: the script is always on (its UI is always shown, its hooks always run)."""


@dataclass
class PostprocessImage:
    """What `postprocess_image` gets: replace `.image` to change the picture before it is saved."""
    image: Any        # PIL.Image
    seed: int
    index: int        # the image's place in its batch


@dataclass
class ScriptOutput:
    """What a selectable script's `run` may return (a Txt2ImgResult or GanResult also does)."""
    images: list = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    paths: list = field(default_factory=list)


@dataclass
class ScriptCall:
    """The scripts a job runs, with the values of their UI controls (A1111's API fields)."""
    script_name: str | None = None                 # a selectable script's title; None or "None": none
    script_args: list = field(default_factory=list)
    alwayson_scripts: dict[str, list] = field(default_factory=dict)  # always-on title -> its args


class Script:
    """Subclass this in extensions/<name>/scripts/*.py. Override what you need; every hook is optional."""

    # Set by the loader:
    extension: "Extension"
    filename: str = ""
    tab: str = "txt2img"

    def title(self) -> str:
        """The name shown in the Script dropdown and used by the API's script_name."""
        raise NotImplementedError

    def show(self, tab: str):
        """Where the script appears: True (selectable in this tab), False (not here) or AlwaysVisible.
        `tab` is "txt2img", "img2img" or "gan" (A1111 passes is_img2img instead)."""
        return tab == "txt2img"

    def ui(self, tab: str) -> list:
        """Gradio components, created here; their values are passed to run/hooks as *args."""
        return []

    def run(self, p, *args):
        """Selectable scripts: do the job instead of the normal generation. Call p.generate(request) for
        images; return p's result type, a ScriptOutput, or None to fall back to the normal generation."""
        return None

    def process(self, p, *args) -> None:
        """Always-on: before sampling; may change p.request (this job's own copy) and p.extra_generation_params."""

    def process_batch(self, p, *args, batch_number: int, prompts: list[str], seeds: list[int]) -> None:
        """Always-on: before each batch is sampled."""

    def postprocess_image(self, p, pp: PostprocessImage, *args) -> None:
        """Always-on: for each image, before it is saved; set pp.image to replace it."""

    def postprocess(self, p, result, *args) -> None:
        """Always-on: after the whole job, with its result (images, infotexts, seeds, paths)."""

    # ---------------------------------------------------------------- used by the app
    @property
    def always_on(self) -> bool:
        return self.show(self.tab) is AlwaysVisible

    @property
    def name(self) -> str:
        """A1111's script name: the title in lower case."""
        return self.title().lower()

    _ui_lock = threading.Lock()

    def ui_controls(self) -> list[dict]:
        """Each control of ui(): label, value (the default), minimum, maximum, step, choices (A1111's
        /script-info). Read from a throwaway build, once: the API needs them without a page."""
        controls = getattr(self, "_ui_controls", None)
        if controls is None:
            import gradio as gr

            with Script._ui_lock, gr.Blocks():
                components = list(self.ui(self.tab) or [])
            controls = [{"label": getattr(c, "label", None), "value": getattr(c, "value", None),
                         "minimum": getattr(c, "minimum", None), "maximum": getattr(c, "maximum", None),
                         "step": getattr(c, "step", None),
                         "choices": [v for _, v in c.choices] if getattr(c, "choices", None) else None}
                        for c in components]
            self._ui_controls = controls
        return controls

    def default_args(self) -> list:
        """The values of the script's controls as first shown: what an API call that gives no args gets.
        The UI records them when it builds; without a UI (--nowebui) they come from ui_controls()."""
        defaults = getattr(self, "_default_args", None)
        if defaults is None:
            defaults = self._default_args = [c["value"] for c in self.ui_controls()]
        return list(defaults)

    def args_with_defaults(self, args) -> list:
        """`args` filled up to the length of the UI with the defaults (A1111 clients often send fewer)."""
        args = list(args or [])
        defaults = self.default_args()
        return args + defaults[len(args):]
