"""Tiny random-weight SD3 and FLUX.1 models, built offline: diffusers folders, and FLUX single files as
published (a whole "checkpoint" file, or a transformer-only file with the text encoders and the VAE in
their own files, as people download them into models/text_encoder and models/VAE).

Shapes: 16-channel VAE of 4 blocks (8x, like the real ones), CLIP-L hidden 32, CLIP-G hidden 64, T5 d_model
128 (2 layers), transformers of 1-2 blocks with 2 heads of 16. A T5 tokenizer (Unigram) is built from a word
list, the CLIP ones as in tiny_models.py; nothing is downloaded."""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from tests import tiny_models
from tests.convert_to_single_file import clip_to_original, vae_to_original

SEED = 0
T5_WIDTH = 128


def make_t5_tokenizer(folder: Path):
    """A T5 tokenizer whose vocabulary is the common test words (one piece each) and single letters."""
    from transformers import T5Tokenizer

    words = [w for line in tiny_models.COMMON_WORDS for w in line.split()]
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + w, -1.0) for w in words]
    pieces += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789,.:()[]"]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def _t5(tokenizer):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=T5_WIDTH, d_kv=16, d_ff=64, num_layers=2,
                                   num_heads=2, relative_attention_num_buckets=8, feed_forward_proj="gated-gelu",
                                   is_encoder_decoder=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))


def _vae16(scaling_factor: float, shift_factor: float):
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         block_out_channels=(8, 16, 32, 32), layers_per_block=1, norm_num_groups=8, sample_size=64,
                         scaling_factor=scaling_factor, shift_factor=shift_factor,
                         use_quant_conv=False, use_post_quant_conv=False)


def make_tiny_sd3(folder: str | Path, with_t5: bool = True) -> Path:
    """A StableDiffusion3Pipeline folder; `with_t5=False` leaves T5 out, as diffusers allows."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    folder = Path(folder)
    tokenizer = tiny_models.make_tiny_tokenizer(folder / "tokenizer")
    tokenizer_2 = tiny_models.make_tiny_tokenizer(folder / "tokenizer_2", pad_token="!")
    tokenizer_3 = make_t5_tokenizer(folder / "tokenizer_3") if with_t5 else None
    torch.manual_seed(SEED)
    text_encoder = CLIPTextModelWithProjection(tiny_models._text_config(tokenizer, 32, 2, 4, 37, open_clip=False))
    text_encoder_2 = CLIPTextModelWithProjection(tiny_models._text_config(tokenizer_2, 64, 2, 4, 64, open_clip=True,
                                                                          projection_dim=32))
    text_encoder_3 = _t5(tokenizer_3) if with_t5 else None
    transformer = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=16, num_layers=2,
                                        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=T5_WIDTH,
                                        caption_projection_dim=32, pooled_projection_dim=64, out_channels=16,
                                        pos_embed_max_size=16)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=_vae16(1.5305, 0.0609),
        text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3, tokenizer_3=tokenizer_3)
    pipe.save_pretrained(str(folder))
    return folder


def make_tiny_flux(folder: str | Path, dev: bool = True) -> Path:
    """A FluxPipeline folder: dev (guidance embedding, dynamic shift) or schnell."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    from modules.models.families import flux

    folder = Path(folder)
    tokenizer = tiny_models.make_tiny_tokenizer(folder / "tokenizer")
    tokenizer_2 = make_t5_tokenizer(folder / "tokenizer_2")
    torch.manual_seed(SEED)
    text_encoder = CLIPTextModel(tiny_models._text_config(tokenizer, 32, 2, 4, 37, open_clip=False))
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=T5_WIDTH,
                                         pooled_projection_dim=32, guidance_embeds=dev, axes_dims_rope=(4, 6, 6))
    scheduler = FlowMatchEulerDiscreteScheduler(**(flux.SCHEDULER_DEV if dev else flux.SCHEDULER_SCHNELL))
    pipe = FluxPipeline(transformer=transformer, scheduler=scheduler, vae=_vae16(0.3611, 0.1159),
                        text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=_t5(tokenizer_2),
                        tokenizer_2=tokenizer_2)
    pipe.save_pretrained(str(folder))
    return folder


# ---------------------------------------------------------------- FLUX single files, as published


def flux_file_parts(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The tiny FLUX folder's weights in the published layouts: "transformer" (BFL's, no prefix), "vae"
    (ae.safetensors: encoder.*/decoder.*), "clip_l" and "t5xxl" (ComfyUI's text encoder files)."""
    from diffusers import FluxPipeline

    from modules.models.families import flux

    pipe = FluxPipeline.from_pretrained(str(folder), local_files_only=True)
    transformer = flux.to_original(pipe.transformer.state_dict(), pipe.transformer.config)
    clip = clip_to_original(pipe.text_encoder.state_dict())
    t5 = {k: v for k, v in pipe.text_encoder_2.state_dict().items()}
    return {"transformer": transformer, "vae": vae_to_original(pipe.vae.state_dict()), "clip_l": clip, "t5xxl": t5}


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Copies: tied tensors (T5's shared / embed_tokens) are two tensors in a file, as published.
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, str(path))
    return path


def sidecar(folder: Path, single_file: Path) -> Path:
    """The diffusers folder minus its weights, beside `single_file` as `<stem>.config/`."""
    target = tiny_models.sidecar_dir(single_file)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns(*(f"*{s}" for s in tiny_models.WEIGHT_SUFFIXES)))
    return target


def make_flux_checkpoint_file(folder: Path, out: Path, with_sidecar: bool = True) -> Path:
    """A whole FLUX checkpoint file (ComfyUI's "checkpoint" layout): everything in one file."""
    parts = flux_file_parts(folder)
    state = {"model.diffusion_model." + k: v for k, v in parts["transformer"].items()}
    state.update({"vae." + k: v for k, v in parts["vae"].items()})
    state.update({"text_encoders.clip_l.transformer." + k: v for k, v in parts["clip_l"].items()})
    state.update({"text_encoders.t5xxl.transformer." + k: v for k, v in parts["t5xxl"].items()})
    _save(state, out)
    if with_sidecar:
        sidecar(folder, out)
    return out


def make_flux_component_files(folder: Path, models: Path, name: str = "flux1-tiny",
                              with_sidecar: bool = True) -> dict[str, Path]:
    """BFL's transformer-only file in models/Stable-diffusion, its VAE (ae.safetensors) in models/VAE and
    ComfyUI's clip_l / t5xxl files in models/text_encoder. Returns their paths by part."""
    parts = flux_file_parts(folder)
    paths = {
        "transformer": _save(parts["transformer"], models / "Stable-diffusion" / f"{name}.safetensors"),
        "vae": _save(parts["vae"], models / "VAE" / f"{name}-ae.safetensors"),
        "clip_l": _save(parts["clip_l"], models / "text_encoder" / f"{name}-clip_l.safetensors"),
        "t5xxl": _save(parts["t5xxl"], models / "text_encoder" / f"{name}-t5xxl.safetensors"),
    }
    if with_sidecar:
        sidecar(folder, paths["transformer"])
    return paths


# ---------------------------------------------------------------- SD3 single files, as published


def _halves_swapped(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def sd3_transformer_to_original(state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """A diffusers SD3 transformer's state dict in SAI's layout (no qk-norm, no dual attention: SD 3 medium's
    shape), the inverse of diffusers' convert_sd3_transformer_checkpoint_to_diffusers."""
    out: dict[str, torch.Tensor] = {"pos_embed": state["pos_embed.pos_embed"]}
    pairs = {"x_embedder.proj": "pos_embed.proj", "t_embedder.mlp.0": "time_text_embed.timestep_embedder.linear_1",
             "t_embedder.mlp.2": "time_text_embed.timestep_embedder.linear_2", "context_embedder": "context_embedder",
             "y_embedder.mlp.0": "time_text_embed.text_embedder.linear_1",
             "y_embedder.mlp.2": "time_text_embed.text_embedder.linear_2", "final_layer.linear": "proj_out"}
    for i in range(num_layers):
        o, d = f"joint_blocks.{i}.", f"transformer_blocks.{i}."
        pairs.update({o + "x_block.attn.proj": d + "attn.to_out.0", o + "x_block.adaLN_modulation.1": d + "norm1.linear",
                      o + "x_block.mlp.fc1": d + "ff.net.0.proj", o + "x_block.mlp.fc2": d + "ff.net.2"})
        last = i == num_layers - 1
        if not last:
            pairs.update({o + "context_block.attn.proj": d + "attn.to_add_out",
                          o + "context_block.adaLN_modulation.1": d + "norm1_context.linear",
                          o + "context_block.mlp.fc1": d + "ff_context.net.0.proj",
                          o + "context_block.mlp.fc2": d + "ff_context.net.2"})
        for suffix in (".weight", ".bias"):
            out[o + "x_block.attn.qkv" + suffix] = torch.cat([state[d + f"attn.to_{x}" + suffix] for x in "qkv"])
            out[o + "context_block.attn.qkv" + suffix] = torch.cat(
                [state[d + f"attn.add_{x}_proj" + suffix] for x in "qkv"])
            if last:
                out[o + "context_block.adaLN_modulation.1" + suffix] = _halves_swapped(
                    state[d + "norm1_context.linear" + suffix])
    for original, name in pairs.items():
        for suffix in (".weight", ".bias"):
            out[original + suffix] = state[name + suffix]
    for suffix in (".weight", ".bias"):
        out["final_layer.adaLN_modulation.1" + suffix] = _halves_swapped(state["norm_out.linear" + suffix])
    return out


def make_sd35_style_files(folder: Path, models: Path, name: str = "sd35-tiny") -> dict[str, Path]:
    """As SD 3.5 large is published: the transformer and VAE in one file (no text encoders), and clip_l,
    clip_g, t5xxl files in models/text_encoder (HF layout, as ComfyUI's)."""
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(str(folder), local_files_only=True)
    transformer = sd3_transformer_to_original(pipe.transformer.state_dict(), pipe.transformer.config.num_layers)
    state = {"model.diffusion_model." + k: v for k, v in transformer.items()}
    state.update({"first_stage_model." + k: v for k, v in vae_to_original(pipe.vae.state_dict()).items()})
    paths = {"checkpoint": _save(state, models / "Stable-diffusion" / f"{name}.safetensors"),
             "clip_l": _save(clip_to_original(pipe.text_encoder.state_dict()),
                             models / "text_encoder" / f"{name}-clip_l.safetensors"),
             "clip_g": _save(clip_to_original(pipe.text_encoder_2.state_dict()),
                             models / "text_encoder" / f"{name}-clip_g.safetensors"),
             "t5xxl": _save(dict(pipe.text_encoder_3.state_dict()), models / "text_encoder" / f"{name}-t5xxl.safetensors")}
    sidecar(folder, paths["checkpoint"])
    return paths


def make_sd3_checkpoint_file(folder: Path, out: Path, with_t5: bool = True, with_sidecar: bool = True) -> Path:
    """A whole SD3 file as SAI published sd3_medium_incl_clips(_t5xxlfp8): transformer, VAE, CLIP-L, CLIP-G
    and (with_t5) T5-XXL, each under its prefix."""
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(str(folder), local_files_only=True)
    transformer = sd3_transformer_to_original(pipe.transformer.state_dict(), pipe.transformer.config.num_layers)
    state = {"model.diffusion_model." + k: v for k, v in transformer.items()}
    state.update({"first_stage_model." + k: v for k, v in vae_to_original(pipe.vae.state_dict()).items()})
    state.update({"text_encoders.clip_l.transformer." + k: v
                  for k, v in clip_to_original(pipe.text_encoder.state_dict()).items()})
    state.update({"text_encoders.clip_g.transformer." + k: v
                  for k, v in clip_to_original(pipe.text_encoder_2.state_dict()).items()})
    if with_t5 and pipe.text_encoder_3 is not None:
        state.update({"text_encoders.t5xxl.transformer." + k: v for k, v in pipe.text_encoder_3.state_dict().items()})
    _save(state, out)
    if with_sidecar:
        sidecar(folder, out)
    return out
