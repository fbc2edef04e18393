"""Diffusers pipeline -> original (LDM / A1111 "single file") checkpoint layout: test and benchmark tooling
(it writes the single-file checkpoints they load); the app never converts.

The inverse of diffusers' single-file loader, ported from diffusers'
`scripts/convert_diffusers_to_original_stable_diffusion.py` and
`scripts/convert_diffusers_to_original_sdxl.py`, but with the block layout read from
the weights themselves, so any depth or width converts (real SD 1.x / 2.x / SDXL as
well as the tiny test models).

Original layout, by part:

    UNet            model.diffusion_model.*
    VAE             first_stage_model.*  (mid-block attention as 1x1 convs)
    SD 1.x text     cond_stage_model.transformer.text_model.*   (HF CLIP, unchanged)
    SD 2.x text     cond_stage_model.model.*                    (OpenCLIP, fused q/k/v)
    SDXL text 1     conditioner.embedders.0.transformer.text_model.*
    SDXL text 2     conditioner.embedders.1.model.*  (OpenCLIP bigG, with text_projection)
    SDXL refiner    conditioner.embedders.0.model.*  (OpenCLIP only)
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from modules.errors import UserError

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

Tensor = torch.Tensor
StateDict = dict[str, Tensor]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_TEXT_PREFIX = "cond_stage_model.transformer."
SD2_TEXT_PREFIX = "cond_stage_model.model."
SDXL_TEXT_PREFIX = "conditioner.embedders.0.transformer."
SDXL_TEXT_2_PREFIX = "conditioner.embedders.1.model."
SDXL_REFINER_TEXT_PREFIX = "conditioner.embedders.0.model."


class ConversionError(UserError):
    """A model cannot be written in the original single-file layout; the message says why."""


# ---------------------------------------------------------------- UNet

_UNET_TOP_LEVEL = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
    # SDXL's size/crop conditioning and class-conditioned UNets share LDM's label_emb.
    "add_embedding.linear_1.": "label_emb.0.0.",
    "add_embedding.linear_2.": "label_emb.0.2.",
    "class_embedding.linear_1.": "label_emb.0.0.",
    "class_embedding.linear_2.": "label_emb.0.2.",
    "class_embedding.weight": "label_emb.weight",
}

_UNET_RESNET = (
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("time_emb_proj.", "emb_layers.1."),
    ("conv_shortcut.", "skip_connection."),
)


def _indices(keys: list[str], pattern: str) -> list[int]:
    """Sorted distinct integers captured by `pattern` (one group) over `keys`."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := regex.match(k))})


def _unet_prefix_map(keys: list[str]) -> dict[str, tuple[str, bool]]:
    """diffusers block prefix -> (LDM prefix, is_resnet), derived from the keys present."""
    prefixes: dict[str, tuple[str, bool]] = {}

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    # Down path: input_blocks.0 is conv_in, then each layer (resnet [+ attention]) and
    # each downsampler takes one input block.
    block = 1
    for i in _indices(keys, r"down_blocks\.(\d+)\."):
        for j in _indices(keys, rf"down_blocks\.{i}\.resnets\.(\d+)\."):
            prefixes[f"down_blocks.{i}.resnets.{j}."] = (f"input_blocks.{block}.0.", True)
            if has(f"down_blocks.{i}.attentions.{j}."):
                prefixes[f"down_blocks.{i}.attentions.{j}."] = (f"input_blocks.{block}.1.", False)
            block += 1
        if has(f"down_blocks.{i}.downsamplers.0."):
            prefixes[f"down_blocks.{i}.downsamplers.0.conv."] = (f"input_blocks.{block}.0.op.", False)
            block += 1

    # Middle: resnet, attention, resnet, ... in one sequence.
    for j in _indices(keys, r"mid_block\.resnets\.(\d+)\."):
        prefixes[f"mid_block.resnets.{j}."] = (f"middle_block.{2 * j}.", True)
    for j in _indices(keys, r"mid_block\.attentions\.(\d+)\."):
        prefixes[f"mid_block.attentions.{j}."] = (f"middle_block.{2 * j + 1}.", False)

    # Up path: each layer is one output block; the upsampler rides in the block's last
    # layer, after the attention if there is one.
    block = 0
    for i in _indices(keys, r"up_blocks\.(\d+)\."):
        layers = _indices(keys, rf"up_blocks\.{i}\.resnets\.(\d+)\.")
        for j in layers:
            prefixes[f"up_blocks.{i}.resnets.{j}."] = (f"output_blocks.{block}.0.", True)
            has_attention = has(f"up_blocks.{i}.attentions.{j}.")
            if has_attention:
                prefixes[f"up_blocks.{i}.attentions.{j}."] = (f"output_blocks.{block}.1.", False)
            if j == layers[-1] and has(f"up_blocks.{i}.upsamplers.0."):
                slot = 2 if has_attention else 1
                prefixes[f"up_blocks.{i}.upsamplers.0."] = (f"output_blocks.{block}.{slot}.", False)
            block += 1
    return prefixes


def unet_to_original(unet_state: Mapping[str, Tensor]) -> StateDict:
    """A diffusers UNet2DConditionModel state dict in LDM `openaimodel.UNetModel` keys
    (without the `model.diffusion_model.` prefix). Transformer blocks keep their names."""
    keys = list(unet_state)
    block_prefixes = _unet_prefix_map(keys)
    # Longest prefix first, so "down_blocks.1.resnets.1." never matches inside ".10.".
    ordered = sorted(block_prefixes.items(), key=lambda item: -len(item[0]))
    converted: StateDict = {}
    for key, value in unet_state.items():
        new_key = None
        for old, new in _UNET_TOP_LEVEL.items():
            if key.startswith(old):
                new_key = new + key[len(old):]
                break
        if new_key is None:
            for old, (new, is_resnet) in ordered:
                if key.startswith(old):
                    rest = key[len(old):]
                    if is_resnet:
                        for diffusers_name, ldm_name in _UNET_RESNET:
                            if rest.startswith(diffusers_name):
                                rest = ldm_name + rest[len(diffusers_name):]
                                break
                    new_key = new + rest
                    break
        if new_key is None:
            raise ConversionError(f"UNet weight {key!r} has no place in the original checkpoint layout")
        converted[new_key] = value
    return converted


# ---------------------------------------------------------------- VAE

_VAE_ATTENTION = (
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
)


def vae_to_original(vae_state: Mapping[str, Tensor]) -> StateDict:
    """A diffusers AutoencoderKL state dict in LDM `AutoencoderKL` keys (without the
    `first_stage_model.` prefix). Attention q/k/v/out become 1x1 conv weights."""
    keys = list(vae_state)
    up_blocks = _indices(keys, r"decoder\.up_blocks\.(\d+)\.")
    last_up = max(up_blocks, default=-1)
    converted: StateDict = {}
    for key, value in vae_state.items():
        new_key = key
        if m := re.match(r"(encoder)\.down_blocks\.(\d+)\.(resnets|downsamplers)\.(\d+)\.(.*)", key):
            part, i, kind, j, rest = m.groups()
            new_key = (f"{part}.down.{i}.block.{j}." if kind == "resnets" else f"{part}.down.{i}.downsample.") + rest
        elif m := re.match(r"(decoder)\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.*)", key):
            part, i, kind, j, rest = m.groups()
            # LDM numbers the decoder's up blocks from the lowest resolution upward.
            level = last_up - int(i)
            new_key = (f"{part}.up.{level}.block.{j}." if kind == "resnets" else f"{part}.up.{level}.upsample.") + rest
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
            part, j, rest = m.groups()
            new_key = f"{part}.mid.block_{int(j) + 1}.{rest}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
            part, rest = m.groups()
            for diffusers_name, ldm_name in _VAE_ATTENTION:
                if rest.startswith(diffusers_name):
                    rest = ldm_name + rest[len(diffusers_name):]
                    break
            new_key = f"{part}.mid.attn_1.{rest}"
            if value.ndim == 2:  # linear -> 1x1 conv
                value = value.reshape(*value.shape, 1, 1)
        elif m := re.match(r"(encoder|decoder)\.conv_norm_out\.(.*)", key):
            new_key = f"{m.group(1)}.norm_out.{m.group(2)}"
        elif not re.match(r"((encoder|decoder)\.conv_(in|out)|quant_conv|post_quant_conv)\.", key):
            raise ConversionError(f"VAE weight {key!r} has no place in the original checkpoint layout")
        new_key = new_key.replace(".conv_shortcut.", ".nin_shortcut.")
        converted[new_key] = value
    return converted


# ---------------------------------------------------------------- text encoders


def _with_text_model_prefix(text_state: Mapping[str, Tensor]) -> StateDict:
    """transformers >= 5.6 flattened CLIPTextModel (no `text_model.`); the original layout
    and CLIPTextModelWithProjection still have it."""
    return {
        (k if k.startswith(("text_model.", "text_projection.")) else "text_model." + k): v
        for k, v in text_state.items()
    }


def clip_to_original(text_state: Mapping[str, Tensor]) -> StateDict:
    """A transformers CLIPTextModel state dict in the HF-CLIP keys that SD 1.x and SDXL's
    first encoder keep in the original file (`text_model.*`)."""
    return {k: v for k, v in _with_text_model_prefix(text_state).items() if not k.endswith("position_ids")}


_OPEN_CLIP_LAYER = (
    ("layer_norm1.", "ln_1."),
    ("layer_norm2.", "ln_2."),
    ("mlp.fc1.", "mlp.c_fc."),
    ("mlp.fc2.", "mlp.c_proj."),
    ("self_attn.out_proj.", "attn.out_proj."),
)

_OPEN_CLIP_TOP_LEVEL = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
}


def open_clip_to_original(text_state: Mapping[str, Tensor]) -> StateDict:
    """A transformers CLIPTextModel(WithProjection) state dict in OpenCLIP keys: q/k/v
    fused into `attn.in_proj_*`, and `text_projection` stored as (hidden, projection)."""
    state = _with_text_model_prefix(text_state)
    converted: StateDict = {}
    qkv: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        if key.endswith("position_ids"):
            continue
        if key in _OPEN_CLIP_TOP_LEVEL:
            converted[_OPEN_CLIP_TOP_LEVEL[key]] = value
            continue
        if key == "text_projection.weight":
            # nn.Linear weight is (out, in); OpenCLIP multiplies x @ text_projection.
            converted["text_projection"] = value.t().contiguous()
            continue
        m = re.match(r"text_model\.encoder\.layers\.(\d+)\.(.*)", key)
        if m is None:
            raise ConversionError(f"text encoder weight {key!r} has no place in the OpenCLIP layout")
        layer, rest = m.groups()
        prefix = f"transformer.resblocks.{layer}."
        if attn := re.match(r"self_attn\.([qkv])_proj\.(weight|bias)", rest):
            which, kind = attn.groups()
            qkv.setdefault(f"{prefix}attn.in_proj_{kind}", {})[which] = value
            continue
        for diffusers_name, ldm_name in _OPEN_CLIP_LAYER:
            if rest.startswith(diffusers_name):
                converted[prefix + ldm_name + rest[len(diffusers_name):]] = value
                break
        else:
            raise ConversionError(f"text encoder weight {key!r} has no place in the OpenCLIP layout")
    for key, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ConversionError(f"text encoder attention {key!r} lacks one of q, k, v")
        converted[key] = torch.cat([parts["q"], parts["k"], parts["v"]])  # OpenCLIP order
    return converted


def _is_open_clip(text_encoder: Any) -> bool:
    """SD 2.x's text encoder is OpenCLIP ViT-H, which uses plain GELU; OpenAI's CLIP (SD
    1.x) uses quick_gelu. The original file layout differs between the two."""
    return getattr(text_encoder.config, "hidden_act", "quick_gelu") == "gelu"


def _prefixed(prefix: str, state: Mapping[str, Tensor]) -> StateDict:
    return {prefix + k: v for k, v in state.items()}


# Keys that exist only while a pipeline is modified in memory; the original layout has
# no place for them, and passing them through would write a file nothing can load.
_IN_MEMORY_ONLY = re.compile(r"\.(to_qkv|to_kv|base_layer|lora_[AB]|lora_down|lora_up)\.")


def _component_state(name: str, module: Any) -> StateDict:
    state = module.state_dict()
    for key in state:
        if _IN_MEMORY_ONLY.search(key):
            raise ConversionError(
                f"{name} has fused attention or unmerged LoRA layers ({key!r}); "
                "unfuse or merge them before saving a single file"
            )
    return state


# ---------------------------------------------------------------- public API


def pipeline_to_original_state_dict(pipe: "DiffusionPipeline") -> dict[str, torch.Tensor]:
    """All weights of a diffusers StableDiffusionPipeline or StableDiffusionXLPipeline
    (or a sibling: img2img, inpaint, SDXL refiner) in the original single-file keys.

    The tensors are the pipeline's own (no copies, except fused or transposed ones); the
    weights must be materialised (not sequentially offloaded to the meta device).
    """
    unet = getattr(pipe, "unet", None)
    vae = getattr(pipe, "vae", None)
    if unet is None or vae is None:
        raise ConversionError(f"{type(pipe).__name__} has no UNet and VAE to save as a Stable Diffusion checkpoint")
    state = _prefixed(UNET_PREFIX, unet_to_original(_component_state("unet", unet)))
    state.update(_prefixed(VAE_PREFIX, vae_to_original(_component_state("vae", vae))))

    text_encoder = getattr(pipe, "text_encoder", None)
    text_encoder_2 = getattr(pipe, "text_encoder_2", None)
    # (prefix, converter, component name) for each text encoder present.
    text_parts: list[tuple[str, Any, str]] = []
    if hasattr(pipe, "text_encoder_2"):  # SDXL family
        if text_encoder is not None:
            text_parts.append((SDXL_TEXT_PREFIX, clip_to_original, "text_encoder"))
            if text_encoder_2 is not None:
                text_parts.append((SDXL_TEXT_2_PREFIX, open_clip_to_original, "text_encoder_2"))
        elif text_encoder_2 is not None:  # refiner: OpenCLIP only, in slot 0
            text_parts.append((SDXL_REFINER_TEXT_PREFIX, open_clip_to_original, "text_encoder_2"))
    elif text_encoder is not None:
        if _is_open_clip(text_encoder):
            text_parts.append((SD2_TEXT_PREFIX, open_clip_to_original, "text_encoder"))
        else:
            text_parts.append((SD1_TEXT_PREFIX, clip_to_original, "text_encoder"))
    if not text_parts:
        raise ConversionError(f"{type(pipe).__name__} has no text encoder to save")
    for prefix, convert, name in text_parts:
        state.update(_prefixed(prefix, convert(_component_state(name, getattr(pipe, name)))))
    return state


def save_single_file(pipe: "DiffusionPipeline", path: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write `pipe` as one original-layout `.safetensors` file at `path`.

    `dtype` (e.g. torch.float16) casts floating-point weights; None keeps them as they
    are. The file is written beside `path` and renamed into place, so a failure never
    leaves a half-written checkpoint.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConversionError(f"{path.name}: a single-file checkpoint is saved as .safetensors")
    state = pipeline_to_original_state_dict(pipe)
    tensors: StateDict = {}
    seen_storage: set[int] = set()
    for key, value in state.items():
        value = value.detach()
        if value.device.type == "meta":
            raise ConversionError(f"weight {key!r} is not loaded (offloaded to the meta device); cannot save it")
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        value = value.to("cpu").contiguous()
        # safetensors refuses tensors that share memory; reshaped views may.
        if value.numel() and value.untyped_storage().data_ptr() in seen_storage:
            value = value.clone()
        if value.numel():
            seen_storage.add(value.untyped_storage().data_ptr())
        tensors[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        save_file(tensors, str(partial), metadata={"format": "pt"})
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path
