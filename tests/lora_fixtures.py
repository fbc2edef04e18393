"""Tiny random-weight LoRA files for the tiny checkpoints of tests/tiny_models.py, in the layouts users have:
kohya's (`lora_unet_…​.lora_down.weight` / `lora_up.weight` / `alpha`, as A1111 reads them) and diffusers'/PEFT's
(`unet.…​.lora_A.weight` / `lora_B.weight`)."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_ATTENTION = ("q_proj", "k_proj", "v_proj", "out_proj")


def _linears(model: torch.nn.Module, ends: tuple[str, ...]) -> list[tuple[str, torch.nn.Linear]]:
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and name.endswith(ends)]


def _models(checkpoint_folder: Path):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(checkpoint_folder / "unet"))
    text_encoder = CLIPTextModel.from_pretrained(checkpoint_folder / "text_encoder")
    return unet, text_encoder


def _pair(module: torch.nn.Linear, rank: int, strength: float, generator: torch.Generator):
    down = torch.randn(rank, module.in_features, generator=generator) * strength
    up = torch.randn(module.out_features, rank, generator=generator) * strength
    return down, up


def make_kohya_lora(checkpoint_folder: str | Path, out_file: str | Path, seed: int = 0, rank: int = 4,
                    strength: float = 0.5, text_encoder: bool = True, unet: bool = True,
                    metadata: dict[str, str] | None = None) -> Path:
    """A kohya-layout LoRA (.safetensors or, by the name's suffix, a weights-only .pt) for a tiny SD 1.x
    checkpoint folder; alpha = rank / 2 as kohya's trainer often writes it."""
    unet_model, text_model = _models(Path(checkpoint_folder))
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    parts = []
    if unet:
        parts += [("lora_unet_", name, m) for name, m in _linears(unet_model, ATTENTION)]
    if text_encoder:
        parts += [("lora_te_", name if name.startswith("text_model.") else "text_model." + name, m)
                  for name, m in _linears(text_model, TEXT_ATTENTION)]
    for prefix, name, module in parts:
        key = prefix + name.replace(".", "_")
        down, up = _pair(module, rank, strength, generator)
        state[f"{key}.lora_down.weight"], state[f"{key}.lora_up.weight"] = down, up
        state[f"{key}.alpha"] = torch.tensor(rank / 2)
    return _write(state, Path(out_file), metadata)


def make_peft_lora(checkpoint_folder: str | Path, out_file: str | Path, seed: int = 1, rank: int = 4,
                   strength: float = 0.5) -> Path:
    """A diffusers/PEFT-layout LoRA (what `save_lora_weights` writes) for a tiny SD 1.x checkpoint folder."""
    unet_model, text_model = _models(Path(checkpoint_folder))
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for prefix, model, ends in (("unet.", unet_model, ATTENTION), ("text_encoder.", text_model, TEXT_ATTENTION)):
        for name, module in _linears(model, ends):
            name = name.removeprefix("text_model.") if prefix == "text_encoder." else name
            down, up = _pair(module, rank, strength, generator)
            state[f"{prefix}{name}.lora_A.weight"], state[f"{prefix}{name}.lora_B.weight"] = down, up
    return _write(state, Path(out_file), None)


def _write(state: dict[str, torch.Tensor], out_file: Path, metadata: dict[str, str] | None) -> Path:
    out_file.parent.mkdir(parents=True, exist_ok=True)
    if out_file.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(out_file), metadata=metadata)
    else:
        torch.save(state, out_file)
    return out_file


def make_kohya_lora_sdxl(checkpoint_folder: str | Path, out_file: str | Path, seed: int = 0, rank: int = 4,
                         strength: float = 0.5) -> Path:
    """A kohya-layout LoRA for a tiny SDXL checkpoint folder: `lora_unet_`, `lora_te1_` and `lora_te2_` keys."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(checkpoint_folder)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))
    encoders = (("lora_te1_", CLIPTextModel.from_pretrained(folder / "text_encoder")),
                ("lora_te2_", CLIPTextModelWithProjection.from_pretrained(folder / "text_encoder_2")))
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    parts = [("lora_unet_", name, m) for name, m in _linears(unet, ATTENTION)]
    for prefix, model in encoders:
        parts += [(prefix, name if name.startswith("text_model.") else "text_model." + name, m)
                  for name, m in _linears(model, TEXT_ATTENTION)]
    for prefix, name, module in parts:
        key = prefix + name.replace(".", "_")
        state[f"{key}.lora_down.weight"], state[f"{key}.lora_up.weight"] = _pair(module, rank, strength, generator)
        state[f"{key}.alpha"] = torch.tensor(rank / 2)
    return _write(state, Path(out_file), None)


def make_transformer_lora(checkpoint_folder: str | Path, out_file: str | Path, seed: int = 0, rank: int = 4,
                          strength: float = 0.5, layout: str = "diffusers") -> Path:
    """A LoRA on the attention of a tiny transformer model folder's transformer (Z-Image: tests/tiny_zimage.py;
    SD3, FLUX: tests/tiny_flow_models.py): "diffusers" is what `save_lora_weights` writes
    (`transformer.…​.lora_A.weight`, PEFT's names); "comfyui" the same layers as ComfyUI's and ai-toolkit's Z-Image
    files name them (`diffusion_model.…​.lora_A.weight` with an `alpha` of rank / 2)."""
    import json

    import diffusers

    folder = Path(checkpoint_folder) / "transformer"
    cls = getattr(diffusers, json.loads((folder / "config.json").read_text())["_class_name"])  # our own fixture
    transformer = cls.from_config(cls.load_config(folder))
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    prefix = "transformer." if layout == "diffusers" else "diffusion_model."
    for name, module in _linears(transformer, ATTENTION):
        down, up = _pair(module, rank, strength, generator)
        state[f"{prefix}{name}.lora_A.weight"], state[f"{prefix}{name}.lora_B.weight"] = down, up
        if layout != "diffusers":
            state[f"{prefix}{name}.alpha"] = torch.tensor(rank / 2)
    return _write(state, Path(out_file), None)
