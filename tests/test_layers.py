"""The layers of docs/ARCHITECTURE.md, checked on the source: arrows point down, the manager owns every weight,
and the map names only files that exist."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "modules"

# Below the UI: usable from a plain Python script, so no Gradio.
BELOW_THE_UI = ["backend.py", "jobs.py", "capabilities", "models", "generation", "api", "zoo", "extensions"]
GRADIO_IMPORT = re.compile(r"^\s*(import gradio|from gradio)", re.M)
# Only modules/models loads weights, builds pipelines from files or imports a module by name.
WEIGHT_LOADING = re.compile(r"import_module\(|from_pretrained\(|from_single_file\(|torch\.load\(|"
                            r"safetensors\.torch import [^#]*load|safe_open\(")
# Moving weights between devices or dtypes is the manager's too (inputs go to the model's device in capabilities).
WEIGHT_MOVES = re.compile(r"\b(model|module|pipe|vae|unet|generator|text_encoder|transformer)\.to\(|"
                          r"\.to\(self\.devices|\.cuda\(\)")
NOT_THE_APP = [MODULES / "models", MODULES / "zoo" / "train"]  # the manager's side; training tools


def python_files(*roots: Path):
    for root in roots:
        yield from ([root] if root.is_file() else sorted(root.rglob("*.py")))


def outside(path: Path, folders: list[Path]) -> bool:
    return not any(path.is_relative_to(f) for f in folders)


def test_nothing_below_the_ui_imports_gradio():
    offenders = [str(p.relative_to(ROOT)) for p in python_files(*(MODULES / n for n in BELOW_THE_UI))
                 if GRADIO_IMPORT.search(p.read_text())]
    # An A1111 script declares its arguments as Gradio components (its ui()); the API reads their defaults by
    # building them once, inside Script.ui_controls, never at import.
    assert offenders == ["modules/extensions/scripts.py"], offenders


def test_only_the_model_manager_loads_weights():
    offenders = []
    for path in python_files(MODULES, ROOT / "webui.py"):
        if outside(path, NOT_THE_APP):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if (WEIGHT_LOADING.search(code) or WEIGHT_MOVES.search(code)) and not code.lstrip().startswith(("\"", "'", "``")):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == [], "\n".join(offenders)


def test_the_architecture_map_names_only_files_that_exist():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:modules|tests|bench|docs|extensions)/[\w./<>-]+?)`", text))
    named |= {"modules/" + m for m in re.findall(r"`modules/([\w/]+\.py)", text)}
    missing = []
    for name in sorted(named):
        if "<" in name:  # a pattern such as modules/capabilities/<name>/
            continue
        for part in name.split(", "):
            if not (ROOT / part.rstrip("/")).exists():
                missing.append(part)
    assert missing == [], missing
