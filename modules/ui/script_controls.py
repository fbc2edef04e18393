"""The Script dropdown and the extensions' script controls in a tab: layout and wiring only.

The values of every script's controls become one ScriptCall, which the tab hands to the backend with
its request: the same object the API builds from script_name, script_args and alwayson_scripts."""
from __future__ import annotations

import inspect
import re
import traceback

import gradio as gr

from modules.capabilities.gan import gan as gan_capability
from modules.errors import UserError
from modules.extensions import Extensions, Script, ScriptCall
from modules.ui.common import owner_of, queue_user_of
from modules.ui.errors import user_errors

NONE = "None"


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(text).lower()).strip("_") or "value"


class ScriptControls:
    def __init__(self, extensions: Extensions, tab: str):
        self.tab = tab
        self.selectable = extensions.scripts_for(tab, always_on=False)
        self.always_on = extensions.scripts_for(tab, always_on=True)
        self.components: list = []
        self.ranges: dict[int, tuple[int, int]] = {}  # id(script) -> its slice of self.components
        self.names: list[str] = []                    # API parameter name of each component
        self.dropdown: gr.Dropdown | None = None

    @property
    def any(self) -> bool:
        return bool(self.selectable or self.always_on)

    def build(self) -> None:
        for script in self.always_on:
            with gr.Accordion(script.title(), open=False, elem_id=f"{self.tab}_script_{_slug(script.title())}"):
                self._build_ui(script)
        titles = [s.title() for s in self.selectable]
        self.dropdown = gr.Dropdown([NONE, *titles], value=NONE, label="Script", elem_id=f"{self.tab}_script",
                                    visible=bool(titles))
        groups = []
        for script in self.selectable:
            with gr.Group(visible=False, elem_id=f"{self.tab}_script_{_slug(script.title())}") as group:
                if not self._build_ui(script):
                    titles.remove(script.title())
            groups.append(group)
        self.dropdown.choices = [(t, t) for t in [NONE, *titles]]
        def show(title):
            updates = [gr.Group(visible=title == s.title()) for s in self.selectable]
            return updates[0] if len(updates) == 1 else updates  # one output takes a value, not a list

        if groups:
            self.dropdown.change(show, inputs=self.dropdown, outputs=groups, api_name=False, queue=False)

    def _build_ui(self, script: Script) -> bool:
        start = len(self.components)
        try:
            components = list(script.ui(self.tab) or [])
            if not all(isinstance(c, gr.components.Component) for c in components):
                raise TypeError(f"ui() must return a list of Gradio components, got {components!r}")
        except Exception as e:  # noqa: BLE001 - a broken script UI leaves the rest of the tab working
            script.extension.add_error(f"{script.title()}: ui", e, traceback.format_exc())
            self.ranges[id(script)] = (start, start)
            return False
        script._default_args = [c.value for c in components]  # what an API call without args gets
        self.components += components
        prefix = _slug(script.title())
        for n, component in enumerate(components):
            name = f"{prefix}_{_slug(getattr(component, 'label', None) or n)}"
            while name in self.names or name == "script_name":
                name += "_"
            self.names.append(name)
        self.ranges[id(script)] = (start, len(self.components))
        return True

    def inputs(self) -> list:
        return [self.dropdown, *self.components]

    def parameter_names(self) -> list[str]:
        return ["script_name", *self.names]

    def call(self, values) -> ScriptCall:
        """The ScriptCall for the values of inputs(), in order."""
        name, *values = values
        call = ScriptCall(script_name=None if name in (None, "", NONE) else name)
        for script in self.always_on:
            start, end = self.ranges.get(id(script), (0, 0))
            call.alwayson_scripts[script.title()] = values[start:end]
        for script in self.selectable:
            if call.script_name == script.title():
                start, end = self.ranges.get(id(script), (0, 0))
                call.script_args = values[start:end]
        return call

    def handler(self, fn, base_names: list[str]):
        """A Gradio listener over inputs `[*base inputs, *self.inputs()]` that calls
        fn(*base values, request=..., scripts=ScriptCall). Its signature names every value, so the
        endpoint's API lists them (script_name, x_y_z_plot_x_type ...), and gr.Request still arrives."""
        count = len(base_names)

        def listener(*values):
            *values, request = values
            result = fn(*values[:count], request=request, scripts=self.call(values[count:]))
            if inspect.isgenerator(result):
                yield from result
            else:
                yield result

        parameters = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                      for n in [*base_names, *self.parameter_names()]]
        parameters.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                            annotation=gr.Request))
        listener.__signature__ = inspect.Signature(parameters)
        listener.__annotations__ = {"request": gr.Request}
        listener.__name__ = getattr(fn, "__name__", "listener")
        return listener


def gan_script_area(backend, gan) -> None:
    """A Scripts accordion under the GAN Sampler (X/Y/Z plot over seed and ψ ...), run with the tab's values."""
    controls = ScriptControls(backend.extensions, "gan")
    if not controls.selectable:
        return
    with gr.Accordion("Scripts", open=False, elem_id="gan_scripts"):
        controls.build()
        run = gr.Button("Run script", elem_id="gan_run_script")

    @user_errors
    def run_script(*values, request=None, scripts=None):
        if not scripts.script_name:
            raise UserError("Script: pick a script first")
        gan_request = gan.sample_request(*values)  # the tab's sampling controls, sample_inputs() in order
        result = backend.runner.run(gan_capability, gan_request, scripts=scripts, owner=owner_of(request),
                                    queue_user=queue_user_of(request))
        return {gan.gallery: list(result.images), gan.message: "", gan.infotext: result.infotext}

    listener = controls.handler(run_script, gan.sample_input_names())
    run.click(listener, inputs=gan.sample_inputs() + controls.inputs(),
              outputs=[gan.gallery, gan.message, gan.infotext], api_name="gan_script")
