"""The built-in text-to-image model: a tiny Stable Diffusion with the standard diffusers parts.

    tokenizer     CLIPTokenizer built offline from the caption vocabulary (clip_tokenizer.py)
    text_encoder  CLIPTextModel, 2 layers, width 64
    vae           AutoencoderKL, 32x32 RGB <-> 8x8x4 latents (scale factor 4)
    unet          UNet2DConditionModel on the 8x8x4 latents, cross-attention to the text
    scheduler     EulerDiscreteScheduler with Stable Diffusion's betas (scaled_linear 0.00085..0.012)

Saved with ``StableDiffusionPipeline.save_pretrained`` the folder is an ordinary SD
checkpoint: any diffusers scheduler, negative prompts, CFG and seeds work.
"""
from __future__ import annotations

from pathlib import Path

from modules.zoo.train.clip_tokenizer import MAX_LENGTH, load_tokenizer, write_tokenizer_files

# name -> (vae channels, unet channels, text width, text layers)
SIZES = {
    "default": dict(vae_channels=(32, 64, 64), unet_channels=(64, 128), text_width=64, text_layers=2),
    "tiny": dict(vae_channels=(16, 16), unet_channels=(16, 32), text_width=16, text_layers=1),
}

SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    prediction_type="epsilon", steps_offset=1, timestep_spacing="leading",
)


def build_tokenizer(folder: str | Path):
    return load_tokenizer(write_tokenizer_files(folder))


def build_text_encoder(tokenizer, width: int, layers: int):
    from transformers import CLIPTextConfig, CLIPTextModel
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width, projection_dim=width,
        num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=MAX_LENGTH,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def build_vae(channels: tuple[int, ...]):
    from diffusers import AutoencoderKL
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=32, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * len(channels), up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=tuple(channels), norm_num_groups=min(16, channels[0]),
    )


def build_unet(channels: tuple[int, ...], cross_attention_dim: int, latent_size: int):
    from diffusers import UNet2DConditionModel
    n = len(channels)
    return UNet2DConditionModel(
        sample_size=latent_size, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=tuple(channels),
        down_block_types=("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
        cross_attention_dim=cross_attention_dim, attention_head_dim=8, norm_num_groups=min(16, channels[0]),
    )


def build_scheduler():
    from diffusers import EulerDiscreteScheduler
    return EulerDiscreteScheduler(**SCHEDULER_CONFIG)


def build_components(size: str, tokenizer_folder: str | Path) -> dict:
    spec = SIZES[size]
    tokenizer = build_tokenizer(tokenizer_folder)
    vae = build_vae(spec["vae_channels"])
    latent_size = 32 // 2 ** (len(spec["vae_channels"]) - 1)
    return dict(
        tokenizer=tokenizer,
        text_encoder=build_text_encoder(tokenizer, spec["text_width"], spec["text_layers"]),
        vae=vae,
        unet=build_unet(spec["unet_channels"], spec["text_width"], latent_size),
        scheduler=build_scheduler(),
    )


def make_pipeline(tokenizer, text_encoder, vae, unet, scheduler):
    from diffusers import StableDiffusionPipeline
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
