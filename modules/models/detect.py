"""Tell which model family a checkpoint is, from its key names and shapes alone.

Works on the original (LDM / A1111 "single file") layout read from a safetensors header, and on
diffusers folders from their config files. No tensor data is read. What each family looks like
lives in its file under modules/models/families/; here are only the refusals that hold for
every family (a VAE, a LoRA or a single component given as a checkpoint)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from modules.errors import BadModelFile
from modules.models import families
from modules.models.families import ConfigFacts, Family, _ldm


@dataclass(frozen=True)
class Architecture:
    family: str  # a Family's name: "sd1", "sd2", "sdxl", "sdxl_refiner", …
    inpainting: bool = False
    missing: tuple[str, ...] = ()  # components a single file lacks: they come from component files

    def missing_labels(self) -> list[str]:
        """What users call the components that must come from component files (optional ones left out)."""
        spec = self.spec
        return [spec.component_files.get(c, c) for c in self.missing if c not in spec.optional_components]

    @property
    def spec(self) -> Family:
        """Everything this family's models have in common (modules/models/families)."""
        return families.by_name(self.family)

    @property
    def label(self) -> str:
        return self.spec.label + (" inpainting" if self.inpainting else "")


def detect_from_keys(path: Path, shapes: dict[str, list[int]]) -> Architecture:
    """`shapes` maps tensor names to shapes (a safetensors header, or a weights-only pickle)."""
    family = families.recognise_header(shapes)
    if family is None:
        raise BadModelFile(path, _not_a_checkpoint(shapes))
    problem = family.header_problem(shapes)
    if problem:
        raise BadModelFile(path, problem)
    # Transformer-only files (FLUX as BFL publishes it, SD 3.5 without its text encoders) take the rest from
    # component files picked next to them (modules/models/component_files.py).
    return Architecture(family.name, family.is_inpainting_header(shapes), family.missing_from_file(shapes))


def detect_gguf(path: Path, shapes: dict[str, list[int]]) -> Architecture:
    """A GGUF file holds a transformer alone (city96's FLUX.1 and SD 3.5 files): its family from the tensors'
    names and shapes, as a .safetensors header's; every other component comes from component files."""
    family = families.recognise_header(shapes)
    if family is None:
        raise BadModelFile(path, f"GGUF file of no supported family: GGUF transformers of FLUX.1 and SD 3/3.5 "
                                 "are supported")
    if family.components_in_file is None or family.denoiser != "transformer":
        raise BadModelFile(path, f"GGUF files of {family.label} are not supported: GGUF transformers of FLUX.1 "
                                 "and SD 3/3.5 are")
    problem = family.header_problem(shapes)
    if problem:
        raise BadModelFile(path, problem)
    return Architecture(family.name, False, tuple(c for c in family.components if c != family.denoiser))


def component_prefixes(family: Family) -> tuple[str, ...]:
    """Where a whole single file of `family` keeps what is not its denoiser (VAE, text encoders)."""
    return (_ldm.VAE_PREFIX, "vae.", "text_encoders.", "cond_stage_model.", "conditioner.",
            *(prefix for _, prefix in family.component_sources.values()))


def _not_a_checkpoint(shapes: dict[str, list[int]]) -> str:
    keys = shapes.keys()

    def has_prefix(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    supported = ", ".join(families.labels())
    if _ldm.has_unet(shapes):
        return f"checkpoint has a UNet but no text encoder weights of a supported family ({supported}): " \
               "unsupported or incomplete file"
    if has_prefix("model.diffusion_model."):
        return f"a diffusion model of an unsupported family (supported: {supported})"
    if has_prefix("encoder.") and has_prefix("decoder."):
        return "this is a VAE, not a full checkpoint: put it in models/VAE"
    if "conv_in.weight" in shapes or has_prefix("down_blocks."):
        return ("this is a single diffusers component (UNet/VAE), not a full checkpoint: "
                "use the whole diffusers folder (with model_index.json) instead")
    if has_prefix("lora_") or any("lora" in k for k in list(keys)[:50]):
        return "this is a LoRA, not a full checkpoint"
    return "not a Stable Diffusion checkpoint (no model.diffusion_model.* UNet weights)"


def detect_diffusers_folder(folder: Path) -> Architecture:
    facts = config_facts(folder)
    family = families.recognise_config(facts)
    if family is None:
        raise BadModelFile(folder, f"unsupported pipeline {facts.pipeline!r} in model_index.json "
                                   f"(supported: {', '.join(families.labels())})")
    return Architecture(family.name, family.is_inpainting_config(facts))


def config_facts(folder: Path) -> ConfigFacts:
    """What a diffusers folder's configs say, read as the families ask (component configs on demand)."""
    index = _read_json(folder / "model_index.json", folder)

    def config(component: str) -> dict:
        if not isinstance(index.get(component), (list, tuple)):
            return {}
        return _read_json(folder / component / "config.json", folder)

    pipeline = index.get("_class_name", "")
    return ConfigFacts(pipeline if isinstance(pipeline, str) else "", index, config)


def _read_json(file: Path, model: Path) -> dict:
    try:
        data = json.loads(file.read_text(encoding="utf8"))
    except FileNotFoundError:
        raise BadModelFile(model, f"missing {file.relative_to(model)}") from None
    except (OSError, ValueError) as e:
        raise BadModelFile(model, f"cannot read {file.relative_to(model)}: {e}") from None
    if not isinstance(data, dict):
        raise BadModelFile(model, f"{file.relative_to(model)} is not a JSON object")
    return data
