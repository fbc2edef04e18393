"""Tell which Stable Diffusion architecture a checkpoint is, from its key names and shapes alone.

Works on the original (LDM / A1111 "single file") layout read from a safetensors header, and on
diffusers folders from their config files. No tensor data is read."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from modules.errors import BadModelFile

UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
SDXL_LABEL_EMB = "model.diffusion_model.label_emb.0.0.weight"

LABELS = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "sdxl_refiner": "SDXL refiner"}


@dataclass(frozen=True)
class Architecture:
    family: str  # "sd1", "sd2", "sdxl", "sdxl_refiner"
    inpainting: bool = False

    @property
    def label(self) -> str:
        return LABELS[self.family] + (" inpainting" if self.inpainting else "")

    @property
    def is_sdxl(self) -> bool:
        return self.family in ("sdxl", "sdxl_refiner")


def detect_from_keys(path: Path, shapes: dict[str, list[int]]) -> Architecture:
    """`shapes` maps tensor names to shapes (a safetensors header, or a weights-only pickle)."""
    keys = shapes.keys()

    def has_prefix(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if UNET_IN not in shapes:
        if has_prefix("encoder.") and has_prefix("decoder."):
            raise BadModelFile(path, "this is a VAE, not a full checkpoint: put it in models/VAE")
        if "conv_in.weight" in shapes or has_prefix("down_blocks."):
            raise BadModelFile(path, "this is a single diffusers component (UNet/VAE), not a full checkpoint: "
                                     "use the whole diffusers folder (with model_index.json) instead")
        if has_prefix("lora_") or any("lora" in k for k in list(keys)[:50]):
            raise BadModelFile(path, "this is a LoRA, not a full checkpoint")
        raise BadModelFile(path, "not a Stable Diffusion checkpoint (no model.diffusion_model.* UNet weights)")
    in_shape = shapes[UNET_IN]
    if len(in_shape) != 4:
        raise BadModelFile(path, f"{UNET_IN} has shape {in_shape}, expected a 4-D conv weight")
    in_channels = in_shape[1]
    if in_channels not in (4, 9):
        raise BadModelFile(path, f"unsupported UNet with {in_channels} input channels (expected 4, or 9 for inpainting)")
    inpainting = in_channels == 9

    if has_prefix("conditioner.embedders.1.model."):
        family = "sdxl"
    elif has_prefix("conditioner.embedders.0.model."):
        family = "sdxl_refiner"
    elif has_prefix("cond_stage_model.model."):
        family = "sd2"
    elif has_prefix("cond_stage_model.transformer."):
        family = "sd1"
    else:
        raise BadModelFile(path, "checkpoint has a UNet but no text encoder weights: unsupported or incomplete file")
    if family in ("sd1", "sd2") and SDXL_LABEL_EMB in shapes:
        raise BadModelFile(path, "UNet has SDXL-style label embeddings but an SD 1/2 text encoder: unsupported mix")
    if not has_prefix("first_stage_model."):
        raise BadModelFile(path, "checkpoint has no VAE weights (first_stage_model.*): incomplete file")
    return Architecture(family, inpainting)


def detect_diffusers_folder(folder: Path) -> Architecture:
    index = _read_json(folder / "model_index.json", folder)
    pipeline_class = index.get("_class_name", "")
    unet_config = _read_json(folder / "unet" / "config.json", folder)
    inpainting = unet_config.get("in_channels", 4) == 9
    if "XL" in pipeline_class:
        has_first_encoder = (index.get("text_encoder") or [None])[0] is not None
        return Architecture("sdxl" if has_first_encoder else "sdxl_refiner", inpainting)
    if pipeline_class.startswith("StableDiffusion"):
        # SD 2.x uses OpenCLIP ViT-H (gelu); SD 1.x uses OpenAI CLIP ViT-L (quick_gelu).
        text_config = _read_json(folder / "text_encoder" / "config.json", folder)
        family = "sd2" if text_config.get("hidden_act") == "gelu" else "sd1"
        return Architecture(family, inpainting)
    raise BadModelFile(folder, f"unsupported pipeline {pipeline_class!r} in model_index.json "
                               "(supported: Stable Diffusion 1.x, 2.x, SDXL)")


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
