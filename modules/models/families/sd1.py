"""Stable Diffusion 1.x (1.4, 1.5 and their fine-tunes): one OpenAI CLIP ViT-L text encoder,
4-channel latents at 1/8 of 512×512 images."""
from __future__ import annotations

from modules.models.families import ConfigFacts, Family, LatentFormat, TextEncoderLayout, _ldm

TEXT_ENCODER = "cond_stage_model.transformer."
PIPELINES = {"txt2img": "StableDiffusionPipeline", "img2img": "StableDiffusionImg2ImgPipeline",
             "inpaint": "StableDiffusionInpaintPipeline"}

# The latent space of the SD 1.x VAE (SD 2.x uses the same one): scaling from the LDM config's
# scale_factor; preview rows are A1111's "Approx cheap" coefficients.
LATENT = LatentFormat(
    approx_nn_file="model.pt", taesd_name="taesd",
    channels=4, scaling_factor=0.18215,
    preview_rgb=((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473)),
)

# The noise schedule SD 1.x/2.x were trained with (the scheduler config a checkpoint ships).
SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "num_train_timesteps": 1000, "prediction_type": "epsilon"}


def recognises_config(facts: ConfigFacts) -> bool:
    # SD 1.x uses OpenAI CLIP ViT-L (quick_gelu); SD 2.x's OpenCLIP ViT-H uses gelu.
    return (facts.pipeline in PIPELINES.values() and facts.has("text_encoder")
            and facts.config("text_encoder").get("hidden_act") != "gelu")


SD1 = Family(
    name="sd1", label="SD 1.x", native_size=512,
    pipelines=PIPELINES,
    components=("unet", "vae", "text_encoder"),
    latent=LATENT,
    text=TextEncoderLayout(encoders=(("tokenizer", "text_encoder"),), layers_without_config=12,
                           header_token_embeddings=(TEXT_ENCODER + "text_model.embeddings.token_embedding.weight",)),
    recognises_header=_ldm.unet_with(TEXT_ENCODER),
    recognises_config=recognises_config,
    header_problem=_ldm.without_sdxl_unet(_ldm.checkpoint_problem, "SD 1.x"),
    is_inpainting_header=_ldm.is_inpainting,
    is_inpainting_config=_ldm.is_inpainting_config,
    scheduler=SCHEDULER,
    skipped_components=("safety_checker", "feature_extractor", "image_encoder"),
    # A1111 runs no safety checker; we do not load one either.
    load_options={"safety_checker": None, "requires_safety_checker": False},
    converters={**_ldm.UNET_AND_VAE, "text_encoder": _ldm.convert_clip},
    modelspec=("stable-diffusion-v1",),
)

FAMILIES = (SD1,)
