"""Tiny random-weight Stable Diffusion models, built offline, for the whole test suite.

Every builder is deterministic (fixed torch seed) and takes well under a few seconds
on a CPU. Each writes an ordinary diffusers folder; `make_single_file` turns one into
an A1111/LDM-layout `.safetensors` plus its sidecar config folder `<stem>.config/`,
which is how the app loads single files with no network:

    Pipeline.from_single_file(str(file), config=str(sidecar), local_files_only=True)

Sizes, and why some are not smaller (diffusers 0.42 / A1111 detect a checkpoint's
family from a few header keys and shapes, so the tiny files must pass the same checks):

- VAE: 4 blocks of 8-32 channels, i.e. the real 8x downscale (latent 8x8 -> image 64x64).
- SD 1.x: UNet (32, 64), 1 layer per block, cross-attention 32; CLIP hidden 32, 2 layers.
- SD 2.x: diffusers calls a file "v2" only if
  `input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight` exists with in-features 1024
  (A1111 checks `cond_stage_model.model...resblocks.0.attn.in_proj_weight` for 1024).
  So: 2 layers per block (input_blocks.2 is then an attention layer, not the
  downsampler) and an OpenCLIP-style text encoder of hidden size 1024 with one layer and
  a 64-wide MLP (~5M parameters, still fast).
- SDXL: diffusers calls a file "xl_base" only if
  `conditioner.embedders.1.model.transformer.resblocks.9...` exists, and "xl_refiner" only
  if `conditioner.embedders.0.model.transformer.resblocks.9...` exists, so the OpenCLIP
  encoder (text_encoder_2) has 10 layers (hidden 64, cheap). Its hidden size must also
  differ from text_encoder's (32): the single-file loader tells the two CLIP towers apart
  only by `position_embedding` width.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

# Tests never touch the network; set before anything imports huggingface_hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from tests.convert_to_single_file import save_single_file
from modules.zoo.train.clip_tokenizer import bytes_to_unicode  # noqa: E402

SEED = 0
MAX_LENGTH = 77

# Words that must each be one token, so prompts in tests read like real prompts.
COMMON_WORDS = (
    "a an the of in on at with and or to is",
    "red green blue yellow white black orange purple pink gray brown",
    "circle square triangle star cat dog bird car tree house flower",
    "photo painting drawing portrait landscape picture image",
    "big small large tiny bright dark",
    "background sky sun moon water cloud",
)

_SPECIAL = ("<|startoftext|>", "<|endoftext|>")


def _bytes_to_unicode() -> list[str]:
    """CLIP's byte -> printable character table, in the order that defines the base vocab."""
    return list(bytes_to_unicode().values())


def _bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's byte-pair encoding of one word: merge the lowest-ranked pair until none apply."""
    while len(symbols) > 1:
        pairs = [(ranks.get(pair, len(ranks)), i) for i, pair in enumerate(zip(symbols, symbols[1:]))]
        rank, i = min(pairs)
        if rank == len(ranks):
            break
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2:]
    return symbols


def _vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    base = _bytes_to_unicode()
    tokens = base + [c + "</w>" for c in base]
    known = set(tokens)
    ranks: dict[tuple[str, str], int] = {}
    for word in (w for line in COMMON_WORDS for w in line.split()):
        # Append merges that join whatever the earlier merges leave of this word. They
        # rank after all earlier ones, so they cannot split a word added before.
        pieces = _bpe(list(word[:-1]) + [word[-1] + "</w>"], ranks)
        joined = pieces[0]
        for piece in pieces[1:]:
            ranks.setdefault((joined, piece), len(ranks))
            joined += piece
            if joined not in known:
                known.add(joined)
                tokens.append(joined)
    tokens += list(_SPECIAL)
    return {token: i for i, token in enumerate(tokens)}, list(ranks)


def make_tiny_tokenizer(folder: str | Path, pad_token: str = "<|endoftext|>"):
    """Write a CLIPTokenizer to `folder` (vocab.json, merges.txt, tokenizer.json, config).

    Byte-level base vocabulary, its `</w>` variants, and merges that make each of
    COMMON_WORDS a single token. `pad_token` is "<|endoftext|>" for OpenAI CLIP
    tokenizers and "!" for OpenCLIP ones (SD 2.x, SDXL tokenizer_2), as in the real models.
    Returns the loaded tokenizer.
    """
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _vocab_and_merges()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    tokenizer = CLIPTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        pad_token=pad_token,
        model_max_length=MAX_LENGTH,
    )
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def _text_config(tokenizer, hidden: int, layers: int, heads: int, intermediate: int,
                 open_clip: bool, projection_dim: int | None = None):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=MAX_LENGTH,
        # OpenAI CLIP uses quick_gelu; OpenCLIP (SD 2.x, SDXL's bigG) uses gelu. The
        # converter picks the original layout of SD 1.x/2.x text encoders by this.
        hidden_act="gelu" if open_clip else "quick_gelu",
        projection_dim=projection_dim or hidden,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _tiny_vae(scaling_factor: float):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 32, 32),
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def _scheduler_sd(prediction_type: str = "epsilon"):
    from diffusers import PNDMScheduler

    return PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        set_alpha_to_one=False,
        skip_prk_steps=True,
        steps_offset=1,
        prediction_type=prediction_type,
    )


def make_tiny_sd15(folder: str | Path, inpainting: bool = False) -> Path:
    """A StableDiffusionPipeline folder (SD 1.x layout) with tiny random weights.

    `inpainting=True` gives a UNet with 9 input channels (latent + mask + masked image).
    """
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    folder = Path(folder)
    tokenizer = make_tiny_tokenizer(folder / "tokenizer")
    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=9 if inpainting else 4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = _tiny_vae(scaling_factor=0.18215)
    text_encoder = CLIPTextModel(_text_config(tokenizer, 32, 2, 4, 37, open_clip=False))
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=_scheduler_sd(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder))
    return folder


def make_tiny_sd2(folder: str | Path) -> Path:
    """A StableDiffusionPipeline folder shaped like SD 2.x (768-v): OpenCLIP-style text
    encoder of width 1024, linear attention projections, v-prediction scheduler."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    folder = Path(folder)
    tokenizer = make_tiny_tokenizer(folder / "tokenizer", pad_token="!")
    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=1024,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        upcast_attention=True,
        norm_num_groups=32,
    )
    vae = _tiny_vae(scaling_factor=0.18215)
    text_encoder = CLIPTextModel(_text_config(tokenizer, 1024, 1, 16, 64, open_clip=True))
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="v_prediction",
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder))
    return folder


def make_tiny_sdxl(folder: str | Path, refiner: bool = False) -> Path:
    """A StableDiffusionXLPipeline folder with tiny random weights.

    `refiner=True` gives a StableDiffusionXLImg2ImgPipeline shaped like the SDXL refiner:
    only tokenizer_2/text_encoder_2 (OpenCLIP) and aesthetic-score time ids.
    """
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionXLImg2ImgPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(folder)
    time_embed_dim = 8
    projection_dim = 32
    tokenizer = None if refiner else make_tiny_tokenizer(folder / "tokenizer")
    tokenizer_2 = make_tiny_tokenizer(folder / "tokenizer_2", pad_token="!")
    torch.manual_seed(SEED)
    text_encoder = None
    if not refiner:
        text_encoder = CLIPTextModel(_text_config(tokenizer, 32, 2, 4, 37, open_clip=False))
    # 10 layers: see the module docstring (diffusers' xl_base / xl_refiner key checks).
    text_encoder_2 = CLIPTextModelWithProjection(
        _text_config(tokenizer_2, 64, 10, 4, 64, open_clip=True, projection_dim=projection_dim)
    )
    # add_time_ids: 6 numbers for base (size, crop, target size), 5 for the refiner
    # (size, crop, aesthetic score).
    time_ids = 5 if refiner else 6
    cross_attention_dim = 64 if refiner else 32 + 64
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        cross_attention_dim=cross_attention_dim,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=time_ids * time_embed_dim + projection_dim,
        norm_num_groups=32,
    )
    vae = _tiny_vae(scaling_factor=0.13025)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
    )
    if refiner:
        pipe = StableDiffusionXLImg2ImgPipeline(
            vae=vae,
            text_encoder=None,
            text_encoder_2=text_encoder_2,
            tokenizer=None,
            tokenizer_2=tokenizer_2,
            unet=unet,
            scheduler=scheduler,
            requires_aesthetics_score=True,
            force_zeros_for_empty_prompt=False,
        )
    else:
        pipe = StableDiffusionXLPipeline(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=tokenizer,
            tokenizer_2=tokenizer_2,
            unet=unet,
            scheduler=scheduler,
        )
    pipe.save_pretrained(str(folder))
    return folder


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")


def sidecar_dir(single_file: str | Path) -> Path:
    """The sidecar config folder of a single file: `<stem>.config/` beside it."""
    single_file = Path(single_file)
    return single_file.with_name(single_file.stem + ".config")


def make_single_file(diffusers_folder: str | Path, out_file: str | Path, sidecar: bool = True) -> Path:
    """Write `out_file` (.safetensors, original A1111/LDM key layout) from a diffusers folder.

    With `sidecar=True` also copy the folder minus its weights (model_index.json, each
    component's config, scheduler config, tokenizer files) to `<stem>.config/` beside it.
    """
    from diffusers import DiffusionPipeline

    diffusers_folder = Path(diffusers_folder)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    pipe = DiffusionPipeline.from_pretrained(str(diffusers_folder), local_files_only=True)
    save_single_file(pipe, out_file)
    if sidecar:
        target = sidecar_dir(out_file)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(
            diffusers_folder,
            target,
            ignore=shutil.ignore_patterns(*(f"*{suffix}" for suffix in WEIGHT_SUFFIXES)),
        )
    return out_file
