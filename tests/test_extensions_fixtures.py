"""Helpers (no tests here): extension folders for tests, with a probe using every always-on hook,
broken ones, and the built-in ones."""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

REPO_EXTENSIONS = Path(__file__).resolve().parent.parent / "extensions"

# Always on: a suffix typed into its UI (or sent as alwayson_scripts args) changes the prompt (process),
# each batch is recorded in the infotext (process_batch), "Invert" inverts every image (postprocess_image),
# and postprocess counts finished jobs.
PROBE = '''
from PIL import ImageOps

from modules.extensions import AlwaysVisible, Script, callbacks

EVENTS = []


class Probe(Script):
    def title(self):
        return "Probe"

    def show(self, tab):
        return AlwaysVisible if tab == "txt2img" else False

    def ui(self, tab):
        import gradio as gr

        return [gr.Textbox("", label="Prompt suffix", elem_id="probe_suffix"),
                gr.Checkbox(False, label="Invert", elem_id="probe_invert")]

    def process(self, p, suffix, invert):
        if suffix:
            p.request.prompt = f"{p.request.prompt} {suffix}"
            p.extra_generation_params["Probe"] = suffix

    def process_batch(self, p, suffix, invert, batch_number, prompts, seeds):
        if suffix:
            p.extra_generation_params["Probe batch"] = f"{batch_number} {seeds[0]}"

    def postprocess_image(self, p, pp, suffix, invert):
        if invert:
            pp.image = ImageOps.invert(pp.image.convert("RGB"))

    def postprocess(self, p, result, suffix, invert):
        EVENTS.append(("postprocess", len(result.images)))


callbacks.on_image_saved(lambda saved: EVENTS.append(("saved", saved.path.name)))
callbacks.on_model_loaded(lambda model: EVENTS.append(("model", model.info.model_name)))
'''

ORDERED = '''
from modules.extensions import AlwaysVisible, Script


class Append(Script):
    def title(self):
        return "Append {name}"

    def show(self, tab):
        return AlwaysVisible if tab == "txt2img" else False

    def process(self, p):
        p.request.prompt += " {name}"
'''

BROKEN_IMPORT = '''
import no_such_module_for_a_broken_extension  # fails at import
'''

BROKEN_HOOK = '''
from modules.extensions import AlwaysVisible, Script


class Crashes(Script):
    def title(self):
        return "Crashes"

    def show(self, tab):
        return AlwaysVisible if tab == "txt2img" else False

    def process(self, p):
        raise RuntimeError("this hook always fails")
'''

BROKEN_TAB = '''
from modules.extensions import callbacks


def add_tab():
    raise ValueError("this tab cannot be built")


callbacks.on_ui_tabs(add_tab)
'''


def write_extension(root: Path, name: str, scripts: dict[str, str], toml: str | None = None) -> Path:
    folder = root / name
    (folder / "scripts").mkdir(parents=True)
    for filename, code in scripts.items():
        (folder / "scripts" / filename).write_text(textwrap.dedent(code), encoding="utf8")
    if toml is not None:
        (folder / "extension.toml").write_text(toml, encoding="utf8")
    return folder


def example_enabled_state(path: Path) -> str:
    """An extensions state file with the Example extension turned on (it is off by default): for the tests
    that use its tab or its /example-tab/saved route in a live app."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"enabled": ["example_tab"]}), encoding="utf8")
    return str(path)


def make_extensions_folder(root: Path, builtin: bool = True, broken: bool = True) -> Path:
    """The built-in extensions (copied), the probe, and (with broken) one that fails to import,
    one whose hook raises and one whose tab raises."""
    root.mkdir(parents=True, exist_ok=True)
    if builtin:
        for name in ("xyz_plot", "example_tab"):
            shutil.copytree(REPO_EXTENSIONS / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    write_extension(root, "probe", {"probe.py": PROBE}, 'name = "Probe"\nversion = "0.1"\norder = 50\n')
    if broken:
        write_extension(root, "broken_import", {"broken.py": BROKEN_IMPORT})
        write_extension(root, "broken_hook", {"crashes.py": BROKEN_HOOK})
        write_extension(root, "broken_tab", {"tab.py": BROKEN_TAB})
    return root


@pytest.fixture
def attach_extensions(backend, tmp_path):
    """attach(folder) loads the extensions of `folder` into the session's backend; undone afterwards."""
    before = backend.extensions, list(backend.manager.on_model_loaded)

    def attach(folder: Path):
        from modules.extensions import Extensions

        extensions = Extensions.load_from(folder, tmp_path / "extensions-state.json")
        extensions.attach(backend)
        return extensions

    yield attach
    backend.extensions = before[0]
    backend.manager.on_model_loaded[:] = before[1]
