"""The classes a model's config files may name: diffusers' and transformers' own, and nothing else.

A model package is data. Its model_index.json names a [library, class] pair per component, and
loaders import that library: a package naming its own `.py` file (e.g. "models.Stable-diffusion.x")
would run it. So every name is checked here before any loader sees the folder: the library must be
one of a few fixed module names mapped to modules of those two packages (never imported by the
string itself), the class is found by attribute lookup on that module, and it must be a model,
scheduler, tokenizer or feature extractor class defined in diffusers or transformers. The pipeline
class must be one of the model families' pipelines; code files where diffusers would look for
custom components are refused too."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

from modules.errors import BadModelFile
from modules.models import families

# Names a real model_index.json uses for a library, and the module (ours, fixed here) each one means.
# diffusers writes a pipeline's sub-package name for classes that live there (SD 1.x: the safety checker).
LIBRARIES = {
    "diffusers": "diffusers",
    "transformers": "transformers",
    "stable_diffusion": "diffusers.pipelines.stable_diffusion",
    "diffusers.pipelines.stable_diffusion": "diffusers.pipelines.stable_diffusion",
}


def pipeline_names() -> tuple[str, ...]:
    """The pipelines a checkpoint folder may declare: those of the model families (the app builds
    its own pipeline class anyway)."""
    return tuple(dict.fromkeys(name for family in families.FAMILIES for name in family.pipelines.values()))


COMPONENT_CONFIGS = ("config.json", "scheduler_config.json")
SHOWN = 120  # characters of a name from the file shown in a message


def allowed_bases() -> tuple[type, ...]:
    from diffusers import ModelMixin, SchedulerMixin
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
    from transformers.feature_extraction_utils import FeatureExtractionMixin
    from transformers.image_processing_base import ImageProcessingMixin

    return ModelMixin, SchedulerMixin, PreTrainedModel, PreTrainedTokenizerBase, FeatureExtractionMixin, \
        ImageProcessingMixin


def component_class(library: object, class_name: object, model: Path, where: str) -> type:
    """The class `[library, class_name]` names, or BadModelFile naming both. `where` says which
    file and entry named it (for the message)."""
    found = _lookup(library, class_name)
    if found is None:
        raise BadModelFile(model, f"{where} names class {_shown(class_name)} from module {_shown(library)}, "
                                  "which is not a diffusers or transformers class (refused: the app never runs "
                                  "code from model files)")
    return found


def pipeline_class(index: dict, model: Path, where: str = "model_index.json") -> type:
    """The Stable Diffusion pipeline class model_index.json's `_class_name` names."""
    import diffusers

    return getattr(diffusers, _pipeline_name(index, model, where))


def _pipeline_name(index: dict, model: Path, where: str) -> str:
    name = index.get("_class_name")
    if isinstance(name, (list, tuple)):
        raise BadModelFile(model, f"{where} asks for a custom pipeline {_shown(name)}: refused, the app never "
                                  "runs code from model files")
    supported = pipeline_names()
    if not isinstance(name, str) or name not in supported:
        raise BadModelFile(model, f"{where} names pipeline {_shown(name)}, which is not a Stable Diffusion "
                                  f"pipeline of diffusers (supported: {', '.join(supported)})")
    return name


def check_model_index(folder: Path, model: Path) -> dict:
    """Check every class `folder`'s model_index.json and its components' configs name; return the index.
    `model` is the checkpoint the folder belongs to (the file or folder errors are about)."""
    index = _read_json(folder / "model_index.json", model, "model_index.json")
    _pipeline_name(index, model, "model_index.json")
    for component, value in index.items():
        if component.startswith("_") or not isinstance(value, (list, tuple)) or len(value) != 2:
            continue  # pipeline options (requires_safety_checker, ...), not components
        library, class_name = value
        if library is None and class_name is None:
            continue
        where = f"model_index.json entry {_shown(component)}"
        component_class(library, class_name, model, where)
        code = folder / component / f"{library}.py"
        if code.exists():  # diffusers would load the class from this file instead of the library
            raise BadModelFile(model, f"{where} has a code file {component}/{library}.py beside its config: "
                                      "refused, the app never runs code from model files")
        for config_name in COMPONENT_CONFIGS:
            config_file = folder / component / config_name
            if not config_file.is_file():
                continue
            config = _read_json(config_file, model, f"{component}/{config_name}")
            if "_class_name" in config:
                component_class("diffusers", config["_class_name"], model, f"{component}/{config_name}")
    return index


def _lookup(library: object, class_name: object) -> type | None:
    if not isinstance(library, str) or library not in LIBRARIES:
        return None
    if not isinstance(class_name, str) or not class_name.isidentifier() or class_name.startswith("_"):
        return None
    if library == "transformers":
        class_name = _renamed_in_transformers(class_name)
    try:
        found = getattr(importlib.import_module(LIBRARIES[library]), class_name, None)
    except Exception:  # noqa: BLE001 - diffusers' lazy modules raise what their import raises
        return None
    if not isinstance(found, type) or found.__module__.split(".")[0] not in ("diffusers", "transformers"):
        return None
    bases = allowed_bases()
    return found if issubclass(found, bases) and found not in bases else None  # a concrete class, not a base


def _renamed_in_transformers(class_name: str) -> str:
    """Older SD 1.x folders name "CLIPFeatureExtractor", which transformers 5 calls CLIPImageProcessor:
    diffusers maps such names through a fixed table, and so do we (the same table, when it has one)."""
    from modules.compat import transformers_class_name

    return transformers_class_name(class_name)


def _read_json(file: Path, model: Path, shown: str) -> dict:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BadModelFile(model, f"cannot read its {shown} ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise BadModelFile(model, f"its {shown} is not a JSON object")
    return data


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"
