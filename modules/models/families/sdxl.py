"""SDXL 1.0 (base and refiner): two text encoders (OpenAI CLIP ViT-L and OpenCLIP bigG, hidden
states side by side, the pooled embedding from the second), its own VAE latent space, 1024×1024.
The refiner has only the second encoder and only refines images (img2img)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import torch

from modules.models.families import ConfigFacts, Family, LatentFormat, Shapes, TextEncoderLayout, _ldm

BASE_ENCODER_1 = "conditioner.embedders.0.transformer."
BASE_ENCODER_2 = "conditioner.embedders.1.model."
REFINER_ENCODER = "conditioner.embedders.0.model."
PIPELINES = {"txt2img": "StableDiffusionXLPipeline", "img2img": "StableDiffusionXLImg2ImgPipeline",
             "inpaint": "StableDiffusionXLInpaintPipeline"}

# The SDXL VAE has SD's architecture (same shapes) but a latent space of its own.
LATENT = LatentFormat(
    approx_nn_file="vaeapprox-sdxl.pt", taesd_name="taesdxl",
    channels=4, scaling_factor=0.13025,
    preview_rgb=((0.3448, 0.4168, 0.4395), (-0.1953, -0.0290, 0.0250), (0.1074, 0.0886, -0.0163),
                 (-0.3730, -0.2499, -0.2088)),
)
SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "num_train_timesteps": 1000, "prediction_type": "epsilon", "timestep_spacing": "leading"}
TEXT = TextEncoderLayout(
    encoders=(("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")),
    pooled_from="text_encoder_2", starts_at_penultimate=True, zeros_for_empty_negative=True,
    honours_attention_mask=False, layers_without_config=12,  # the shallowest: CLIP ViT-L
    embedding_keys=("clip_l", "clip_g"),
    header_token_embeddings=(BASE_ENCODER_1 + "text_model.embeddings.token_embedding.weight",
                             BASE_ENCODER_2 + "token_embedding.weight"),
)


# A1111's sdxl_refiner_high/low_aesthetic_score defaults (diffusers' too): the refiner's size ids end with
# an aesthetic score instead of the target size.
AESTHETIC_SCORE, NEGATIVE_AESTHETIC_SCORE = 6.0, 2.5


def _added(embeds: Mapping, last: tuple[float, ...], negative_last: tuple[float, ...], width: int,
           height: int) -> tuple[dict, dict]:
    """SDXL's UNet extras: the pooled text embedding and the ids (original size, crop top-left, `last`), as
    diffusers' pipelines build them for a picture generated at its own size."""
    pooled, negative = embeds["pooled_prompt_embeds"], embeds["negative_pooled_prompt_embeds"]

    def ids(tail: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
        row = torch.tensor([[height, width, 0, 0, *tail]], dtype=like.dtype, device=like.device)
        return row.repeat(like.shape[0], 1)

    return ({"text_embeds": pooled, "time_ids": ids(last, pooled)},
            {"text_embeds": negative, "time_ids": ids(negative_last, negative)})


def base_conditions(embeds: Mapping, width: int, height: int) -> tuple[dict, dict]:
    return _added(embeds, (height, width), (height, width), width, height)


def refiner_conditions(embeds: Mapping, width: int, height: int) -> tuple[dict, dict]:
    return _added(embeds, (AESTHETIC_SCORE,), (NEGATIVE_AESTHETIC_SCORE,), width, height)


def recognises_refiner_header(shapes: Shapes) -> bool:
    return _ldm.unet_with(REFINER_ENCODER)(shapes) and not _ldm.has_prefix(shapes, BASE_ENCODER_2)


def recognises_base_config(facts: ConfigFacts) -> bool:
    return facts.pipeline in PIPELINES.values() and facts.has("text_encoder")


def recognises_refiner_config(facts: ConfigFacts) -> bool:
    return facts.pipeline in PIPELINES.values() and not facts.has("text_encoder") and facts.has("text_encoder_2")


SDXL = Family(
    name="sdxl", label="SDXL", native_size=1024,
    pipelines=PIPELINES,
    components=("unet", "vae", "text_encoder", "text_encoder_2"),
    latent=LATENT,
    text=TEXT,
    recognises_header=_ldm.unet_with(BASE_ENCODER_2),
    recognises_config=recognises_base_config,
    header_problem=_ldm.checkpoint_problem,
    is_inpainting_header=_ldm.is_inpainting,
    is_inpainting_config=_ldm.is_inpainting_config,
    scheduler=SCHEDULER,
    skipped_components=("feature_extractor", "image_encoder"),
    converters={**_ldm.UNET_AND_VAE, "text_encoder": _ldm.convert_clip,
                "text_encoder_2": _ldm.open_clip(BASE_ENCODER_2)},
    modelspec=("stable-diffusion-xl-v1-base",),
    added_conditions=base_conditions,
)

# The base's latent space, size, scheduler and file checks; only the second encoder, and only img2img.
SDXL_REFINER = replace(
    SDXL,
    name="sdxl_refiner", label="SDXL refiner",
    pipelines={"img2img": "StableDiffusionXLImg2ImgPipeline"},
    components=("unet", "vae", "text_encoder_2"),
    # Its only encoder is OpenCLIP bigG: 32 layers.
    text=replace(TEXT, encoders=(("tokenizer_2", "text_encoder_2"),), layers_without_config=32,
                 embedding_keys=("clip_g",), header_token_embeddings=(REFINER_ENCODER + "token_embedding.weight",)),
    recognises_header=recognises_refiner_header,
    recognises_config=recognises_refiner_config,
    converters={**_ldm.UNET_AND_VAE, "text_encoder_2": _ldm.open_clip(REFINER_ENCODER)},
    refusals={"txt2img": "an SDXL refiner only refines images; pick an SDXL base model for txt2img"},
    modelspec=("stable-diffusion-xl-v1-refiner",),
    added_conditions=refiner_conditions,
)

FAMILIES = (SDXL, SDXL_REFINER)
