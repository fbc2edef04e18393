"""Stable Diffusion 2.x (2.0, 2.1, 512-base and 768-v): one OpenCLIP ViT-H text encoder, the
SD 1.x VAE. A single file with no config is taken as the 768-v variant (v-prediction, 768×768),
as diffusers and A1111 do; a 512-base (epsilon) checkpoint's config says so and wins."""
from __future__ import annotations

from dataclasses import replace

from modules.models.families import ConfigFacts, TextEncoderLayout, _ldm, sd1

TEXT_ENCODER = "cond_stage_model.model."


def recognises_config(facts: ConfigFacts) -> bool:
    return (facts.pipeline in sd1.PIPELINES.values() and facts.has("text_encoder")
            and facts.config("text_encoder").get("hidden_act") == "gelu")


# SD 1.x's pipelines, components, latent space and file checks; its own text encoder, size and prediction.
SD2 = replace(
    sd1.SD1,
    name="sd2", label="SD 2.x", native_size=768,
    # OpenCLIP ViT-H has 24 layers; diffusers' conversion drops the last (SD 2.x uses the penultimate).
    text=TextEncoderLayout(encoders=(("tokenizer", "text_encoder"),), layers_without_config=23,
                           header_token_embeddings=(TEXT_ENCODER + "token_embedding.weight",)),
    recognises_header=_ldm.unet_with(TEXT_ENCODER),
    recognises_config=recognises_config,
    header_problem=_ldm.without_sdxl_unet(_ldm.checkpoint_problem, "SD 2.x"),
    scheduler={**sd1.SCHEDULER, "prediction_type": "v_prediction"},
    converters={**_ldm.UNET_AND_VAE, "text_encoder": _ldm.open_clip(TEXT_ENCODER)},
    modelspec=("stable-diffusion-v2",),
)

FAMILIES = (SD2,)
