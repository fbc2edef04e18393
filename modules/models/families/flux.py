"""FLUX.1 (dev, schnell and their fine-tunes): a double/single-stream transformer on 16-channel latents
packed into 2×2 patches, CLIP-L (its pooled vector only) and T5-XXL (the sequence), flow matching with a
resolution-dependent shift, 1024×1024.

dev is guidance-distilled: the guidance value goes into the model (its guidance_in embedding), so it is its own
control — "Distilled CFG Scale", as Forge calls it — and the CFG scale stays 1. A CFG scale above 1 on FLUX is
real classifier-free guidance with the negative prompt (two model calls per step), as Forge does; below 1 is
refused (request check). schnell has no guidance embedding and is made for 4 steps.

Files as published: BFL's flux1-dev/flux1-schnell.safetensors are transformer-only (double_blocks.*,
single_blocks.* with no prefix); "checkpoint" versions (ComfyUI's) hold everything under
model.diffusion_model.*, the VAE under vae.* or first_stage_model.*, the text encoders under
text_encoders.{clip_l,t5xxl}.transformer.*. The transformer's key map follows diffusers'
convert_flux_transformer_checkpoint_to_diffusers, with the widths read from the model's config (diffusers'
own assumes the full-size 3072)."""
from __future__ import annotations

from dataclasses import replace

import torch

from modules.models.families import ConfigFacts, Family, LatentFormat, Shapes, TextEncoderLayout, _flow, _ldm, sd3

KEY_NORM = "double_blocks.0.img_attn.norm.key_norm.scale"  # diffusers' "flux" key
GUIDANCE = "guidance_in.in_layer.weight"
IMAGE_IN = "img_in.weight"
PIPELINES = {"txt2img": "FluxPipeline", "img2img": "FluxImg2ImgPipeline", "inpaint": "FluxInpaintPipeline"}

# ComfyUI's latent_formats.Flux: scaling/shift of the FLUX VAE, "Approx cheap" preview rows and bias.
LATENT = LatentFormat(
    channels=16, scaling_factor=0.3611, shift_factor=0.1159,
    preview_rgb=((-0.0346, 0.0244, 0.0681), (0.0034, 0.0210, 0.0687), (0.0275, -0.0668, -0.0433),
                 (-0.0174, 0.0160, 0.0617), (0.0859, 0.0721, 0.0329), (0.0004, 0.0383, 0.0115),
                 (0.0405, 0.0861, 0.0915), (-0.0236, -0.0185, -0.0259), (-0.0245, 0.0250, 0.1180),
                 (0.1008, 0.0755, -0.0421), (-0.0515, 0.0201, 0.0011), (0.0428, -0.0012, -0.0036),
                 (0.0817, 0.0765, 0.0749), (-0.1264, -0.0522, -0.1103), (-0.0280, -0.0881, -0.0499),
                 (-0.1262, -0.0982, -0.0778)),
    preview_bias=(-0.0329, -0.0718, -0.0851),
)
# FLUX.1's FlowMatchEulerDiscreteScheduler: the shift grows with the image's token count (dev); schnell's
# config turns that off (shift 1).
SCHEDULER_DEV = {"num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5,
                 "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096}
SCHEDULER_SCHNELL = {"num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False}
PACKED_PATCH = 2  # latents go into the transformer as 2×2 patches


def transformer_prefix(shapes: Shapes) -> str | None:
    return _flow.transformer_prefix(shapes, KEY_NORM)


def is_dev(shapes: Shapes) -> bool:
    prefix = transformer_prefix(shapes)
    return prefix is not None and prefix + GUIDANCE in shapes


def header_problem(shapes: Shapes) -> str | None:
    prefix = transformer_prefix(shapes)
    shape = shapes.get(prefix + IMAGE_IN)
    if shape is None or len(shape) != 2:
        return f"FLUX transformer without a 2-D {prefix}{IMAGE_IN}: damaged or unsupported file"
    patch = LATENT.channels * PACKED_PATCH * PACKED_PATCH
    if shape[1] != patch:  # Fill (384) and Depth (128) take a condition image besides the latents
        return (f"FLUX transformer with {shape[1]} input features (expected {patch}): FLUX.1 Fill, Depth and other "
                "conditioned variants are not supported")
    return None


def components_in_file(shapes: Shapes) -> set[str]:
    return _flow.components_in_file(shapes, {"vae": _flow.VAE_PREFIXES, "text_encoder": (sd3.CLIP_L,),
                                             "text_encoder_2": (sd3.T5,)})


def _recognises_config(dev: bool):
    def recognises(facts: ConfigFacts) -> bool:
        return (facts.pipeline in PIPELINES.values() and facts.has("transformer")
                and bool(facts.config("transformer").get("guidance_embeds", False)) == dev)
    return recognises


def assemble(pipe, clip: dict, t5: torch.Tensor | None, t5_negative: torch.Tensor | None) -> dict:
    """FLUX takes T5's hidden states as the sequence and CLIP-L's pooled vector; the negative pair is used
    only for real CFG (a CFG scale above 1)."""
    if t5 is None:
        raise ValueError("FLUX needs its T5 text encoder")
    return {"prompt_embeds": t5, "negative_prompt_embeds": t5_negative,
            "pooled_prompt_embeds": clip["pooled_prompt_embeds"],
            "negative_pooled_prompt_embeds": clip["negative_pooled_prompt_embeds"]}


def pack(latents: torch.Tensor, pipe) -> torch.Tensor:
    """(B, 16, H, W) → (B, H/2 · W/2, 64), as FluxPipeline._pack_latents."""
    b, c, h, w = latents.shape
    patches = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(latents: torch.Tensor, pipe, height: int, width: int) -> torch.Tensor:
    """The inverse of pack, for an image of height × width pixels."""
    if latents.dim() == 4:
        return latents
    b, _, features = latents.shape
    h, w = height // pipe.vae_scale_factor, width // pipe.vae_scale_factor
    patches = latents.view(b, h // 2, w // 2, features // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return patches.reshape(b, features // 4, h, w)


# ---------------------------------------------------------------- the transformer's key map


def key_map(config) -> list[tuple[str, tuple[str, ...], str]]:
    """(original name, diffusers names, how): "same", "split" (fused q/k/v[/mlp] along dim 0) or "swap"
    (shift/scale halves in the other order). Names without .weight/.bias; both are mapped."""
    inner = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    rows: list[tuple[str, tuple[str, ...], str]] = [
        ("time_in.in_layer", ("time_text_embed.timestep_embedder.linear_1",), "same"),
        ("time_in.out_layer", ("time_text_embed.timestep_embedder.linear_2",), "same"),
        ("vector_in.in_layer", ("time_text_embed.text_embedder.linear_1",), "same"),
        ("vector_in.out_layer", ("time_text_embed.text_embedder.linear_2",), "same"),
        ("txt_in", ("context_embedder",), "same"),
        ("img_in", ("x_embedder",), "same"),
        ("final_layer.linear", ("proj_out",), "same"),
        ("final_layer.adaLN_modulation.1", ("norm_out.linear",), "swap"),
    ]
    if config.get("guidance_embeds"):
        rows += [("guidance_in.in_layer", ("time_text_embed.guidance_embedder.linear_1",), "same"),
                 ("guidance_in.out_layer", ("time_text_embed.guidance_embedder.linear_2",), "same")]
    for i in range(int(config["num_layers"])):
        o, d = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        rows += [
            (o + "img_mod.lin", (d + "norm1.linear",), "same"),
            (o + "txt_mod.lin", (d + "norm1_context.linear",), "same"),
            (o + "img_attn.qkv", (d + "attn.to_q", d + "attn.to_k", d + "attn.to_v"), "split"),
            (o + "txt_attn.qkv", (d + "attn.add_q_proj", d + "attn.add_k_proj", d + "attn.add_v_proj"), "split"),
            (o + "img_attn.norm.query_norm.scale", (d + "attn.norm_q.weight",), "same"),
            (o + "img_attn.norm.key_norm.scale", (d + "attn.norm_k.weight",), "same"),
            (o + "txt_attn.norm.query_norm.scale", (d + "attn.norm_added_q.weight",), "same"),
            (o + "txt_attn.norm.key_norm.scale", (d + "attn.norm_added_k.weight",), "same"),
            (o + "img_mlp.0", (d + "ff.net.0.proj",), "same"),
            (o + "img_mlp.2", (d + "ff.net.2",), "same"),
            (o + "txt_mlp.0", (d + "ff_context.net.0.proj",), "same"),
            (o + "txt_mlp.2", (d + "ff_context.net.2",), "same"),
            (o + "img_attn.proj", (d + "attn.to_out.0",), "same"),
            (o + "txt_attn.proj", (d + "attn.to_add_out",), "same"),
        ]
    for i in range(int(config["num_single_layers"])):
        o, d = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        rows += [
            (o + "modulation.lin", (d + "norm.linear",), "same"),
            (o + "linear1", (d + "attn.to_q", d + "attn.to_k", d + "attn.to_v", d + "proj_mlp"), f"split:{inner}"),
            (o + "norm.query_norm.scale", (d + "attn.norm_q.weight",), "same"),
            (o + "norm.key_norm.scale", (d + "attn.norm_k.weight",), "same"),
            (o + "linear2", (d + "proj_out",), "same"),
        ]
    return rows


def _swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def convert_transformer(module: torch.nn.Module, config, checkpoint: dict) -> dict:
    prefix = transformer_prefix({k: [] for k in checkpoint}) or ""
    state: dict = {}
    for original, names, how in key_map(config):
        is_param = original.endswith(".scale")
        for suffix in (("",) if is_param else (".weight", ".bias")):
            tensor = checkpoint[prefix + original + suffix]
            if how == "same":
                state[names[0] + suffix] = tensor
            elif how == "swap":
                state[names[0] + suffix] = _swap_halves(tensor)
            else:
                inner = int(how.split(":")[1]) if ":" in how else tensor.shape[0] // len(names)
                sizes = [inner] * 3 + ([tensor.shape[0] - 3 * inner] if len(names) == 4 else [])
                for name, part in zip(names, torch.split(tensor, sizes, dim=0)):
                    state[name + suffix] = part
    return state


def to_original(state: dict, config) -> dict:
    """A diffusers FLUX transformer's state dict in BFL's layout (tests write published-style files with it)."""
    out: dict = {}
    for original, names, how in key_map(config):
        is_param = original.endswith(".scale")
        for suffix in (("",) if is_param else (".weight", ".bias")):
            parts = [state[name + suffix] for name in names]
            out[original + suffix] = (_swap_halves(parts[0]) if how == "swap"
                                      else torch.cat(parts, dim=0) if how != "same" else parts[0])
    return out


TEXT = TextEncoderLayout(
    encoders=(("tokenizer", "text_encoder"),), pooled_from="text_encoder",
    honours_attention_mask=False, layers_without_config=12,
    t5=("tokenizer_2", "text_encoder_2"), t5_max_length=512, assemble=assemble,
)


def _family(dev: bool) -> Family:
    return Family(
        name="flux" if dev else "flux_schnell", label="FLUX.1 dev" if dev else "FLUX.1 schnell", native_size=1024,
        pipelines=PIPELINES,
        components=("transformer", "vae", "text_encoder", "text_encoder_2"),
        latent=LATENT,
        # schnell was trained with 256 T5 tokens, dev with 512 (diffusers' max_sequence_length defaults).
        text=TEXT if dev else replace(TEXT, t5_max_length=256),
        recognises_header=is_dev if dev else (lambda shapes: transformer_prefix(shapes) is not None
                                              and not is_dev(shapes)),
        recognises_config=_recognises_config(dev),
        denoiser="transformer",
        header_problem=header_problem,
        scheduler=SCHEDULER_DEV if dev else SCHEDULER_SCHNELL,
        skipped_components=_flow.SKIPPED_COMPONENTS,
        converters={"transformer": convert_transformer, "vae": _ldm.convert_vae,
                    "text_encoder": sd3.clip_under(sd3.CLIP_L), "text_encoder_2": sd3.convert_t5},
        modelspec=("flux-1-dev",) if dev else ("flux-1-schnell",),
        # CLIP-L's pooled output comes from its last layer whatever the clip skip, and T5 has none.
        refusals={"clip skip": f"clip skip has no effect on {'FLUX.1 dev' if dev else 'FLUX.1 schnell'} models: they "
                               "read only CLIP-L's pooled output, which comes from its last layer"},
        sampler_kind="flow",
        # FlowMatchHeun takes neither FLUX's custom sigmas nor its dynamic shift: no Heun here.
        sampler_names=("Euler", "DPM++ 2M", "UniPC"),
        default_steps=20 if dev else 4, default_cfg_scale=1.0,
        guidance_kind="true_cfg", distilled_guidance=dev,
        pack_latents=pack, unpack_latents=unpack, size_multiple=16,
        component_files={"vae": "VAE", "text_encoder": "CLIP-L text encoder",
                         "text_encoder_2": "T5-XXL text encoder"},
        components_in_file=components_in_file,
        component_sources={"vae": ("vae", _ldm.VAE_PREFIX), "text_encoder": ("clip", sd3.CLIP_L),
                           "text_encoder_2": ("t5", sd3.T5)},
    )


FLUX_DEV = _family(dev=True)
FLUX_SCHNELL = _family(dev=False)

FAMILIES = (FLUX_DEV, FLUX_SCHNELL)
