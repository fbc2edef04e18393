"""The original (LDM / A1111 "single file") layout that SD 1.x, 2.x and SDXL checkpoints share:
the UNet under model.diffusion_model.*, the VAE under first_stage_model.*, and the text encoders
under a prefix each family names. Helpers for the family files; not a family itself."""
from __future__ import annotations

from collections.abc import Callable

import torch

from modules.models.families import ConfigFacts, Shapes

UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
LABEL_EMB = "model.diffusion_model.label_emb.0.0.weight"  # SDXL's size/crop conditioning
VAE_PREFIX = "first_stage_model."
LATENT_CHANNELS, INPAINT_CHANNELS = 4, 9  # inpainting UNets also take the mask and the masked image


def has_prefix(shapes: Shapes, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in shapes)


def has_unet(shapes: Shapes) -> bool:
    return UNET_IN in shapes


def unet_in_channels(shapes: Shapes) -> int | None:
    shape = shapes.get(UNET_IN)
    return shape[1] if shape is not None and len(shape) == 4 else None


def unet_with(encoder_prefix: str) -> Callable[[Shapes], bool]:
    """A single file's recogniser: an LDM UNet and a text encoder under `encoder_prefix` (the family's own)."""
    def recognises(shapes: Shapes) -> bool:
        return has_unet(shapes) and has_prefix(shapes, encoder_prefix)
    return recognises


def is_inpainting(shapes: Shapes) -> bool:
    return unet_in_channels(shapes) == INPAINT_CHANNELS


def checkpoint_problem(shapes: Shapes) -> str | None:
    """What makes a file with an LDM UNet and a known text encoder unusable, or None."""
    shape = shapes[UNET_IN]
    if len(shape) != 4:
        return f"{UNET_IN} has shape {shape}, expected a 4-D conv weight"
    if shape[1] not in (LATENT_CHANNELS, INPAINT_CHANNELS):
        return f"unsupported UNet with {shape[1]} input channels (expected 4, or 9 for inpainting)"
    if not has_prefix(shapes, VAE_PREFIX):
        return "checkpoint has no VAE weights (first_stage_model.*): incomplete file"
    return None


def without_sdxl_unet(problem: Callable[[Shapes], str | None], encoder: str) -> Callable[[Shapes], str | None]:
    """SD 1.x/2.x: a UNet with SDXL's label embeddings beside their text encoder is a broken merge."""
    def check(shapes: Shapes) -> str | None:
        if LABEL_EMB in shapes:
            return f"UNet has SDXL-style label embeddings but an {encoder} text encoder: unsupported mix"
        return problem(shapes)
    return check


def is_inpainting_config(facts: ConfigFacts) -> bool:
    return facts.config("unet").get("in_channels", LATENT_CHANNELS) == INPAINT_CHANNELS


# ---------------------------------------------------------------- single-file converters
# Each takes (the module being built, its diffusers config, the whole file as {name: tensor})
# and returns the module's state dict, using diffusers' own converters.


def convert_unet(module: torch.nn.Module, config, checkpoint: dict) -> dict:
    from diffusers.loaders import single_file_utils as sfu

    return sfu.convert_ldm_unet_checkpoint(checkpoint, config=config)


def convert_vae(module: torch.nn.Module, config, checkpoint: dict) -> dict:
    from diffusers.loaders import single_file_utils as sfu

    return sfu.convert_ldm_vae_checkpoint(checkpoint, config=config)


def convert_clip(module: torch.nn.Module, config, checkpoint: dict) -> dict:
    """OpenAI CLIP ViT-L (SD 1.x, SDXL's first encoder): cond_stage_model.transformer.* or
    conditioner.embedders.0.transformer.*"""
    from diffusers.loaders import single_file_utils as sfu

    return _flattened(module, sfu.convert_ldm_clip_checkpoint(checkpoint))


def open_clip(prefix: str) -> Callable:
    """OpenCLIP (SD 2.x, SDXL's second encoder, the refiner's only one) under `prefix`."""
    def convert(module: torch.nn.Module, config, checkpoint: dict) -> dict:
        from diffusers.loaders import single_file_utils as sfu

        if not any(k.startswith(prefix) for k in checkpoint):
            raise KeyError(f"no OpenCLIP text encoder weights under {prefix}")
        return _flattened(module, sfu.convert_open_clip_checkpoint(module, checkpoint, prefix=prefix))
    return convert


def _flattened(module: torch.nn.Module, state: dict) -> dict:
    # transformers >= 5.6 flattened CLIPTextModel: no `text_model.` level in its state dict.
    return state if hasattr(module, "text_model") else {k.removeprefix("text_model."): v for k, v in state.items()}


UNET_AND_VAE = {"unet": convert_unet, "vae": convert_vae}
