"""Stable Diffusion 3 and 3.5 (medium, large, large turbo): an MMDiT transformer on 16-channel latents,
three text encoders (CLIP-L and CLIP-G side by side, then T5-XXL after them along the sequence), flow
matching, 1024×1024.

Published single files hold the transformer under model.diffusion_model.joint_blocks.* and the VAE under
first_stage_model.*; some also hold the text encoders under text_encoders.{clip_l,clip_g,t5xxl}.transformer.*
(sd3_medium_incl_clips_t5xxlfp8), most do not: those come from component files (models/text_encoder).
Transformer-only files (no prefix: joint_blocks.*) need the VAE from models/VAE as well. T5 is optional,
as diffusers allows: without it the T5 part of the prompt embedding is zeros."""
from __future__ import annotations

import torch

from modules.models.families import Family, LatentFormat, Shapes, TextEncoderLayout, _flow, _ldm

JOINT_BLOCK = "joint_blocks.0.context_block.adaLN_modulation.1.bias"  # diffusers' "sd3" key
PATCH_EMBED = "x_embedder.proj.weight"
CLIP_L = "text_encoders.clip_l.transformer."
CLIP_G = "text_encoders.clip_g.transformer."
T5 = "text_encoders.t5xxl.transformer."
# img2img (and so the hires fix) and inpainting: diffusers' SD3 pipelines around the same cached modules.
PIPELINES = {"txt2img": "StableDiffusion3Pipeline", "img2img": "StableDiffusion3Img2ImgPipeline",
             "inpaint": "StableDiffusion3InpaintPipeline"}

# ComfyUI's latent_formats.SD3: scaling/shift of the SD3 VAE, "Approx cheap" preview rows and bias.
LATENT = LatentFormat(
    channels=16, scaling_factor=1.5305, shift_factor=0.0609,
    preview_rgb=((-0.0922, -0.0175, 0.0749), (0.0311, 0.0633, 0.0954), (0.1994, 0.0927, 0.0458),
                 (0.0856, 0.0339, 0.0902), (0.0587, 0.0272, -0.0496), (-0.0006, 0.1104, 0.0309),
                 (0.0978, 0.0306, 0.0427), (-0.0042, 0.1038, 0.1358), (-0.0194, 0.0020, 0.0669),
                 (-0.0488, 0.0130, -0.0268), (0.0922, 0.0988, 0.0951), (-0.0278, 0.0524, -0.0542),
                 (0.0332, 0.0456, 0.0895), (-0.0069, -0.0030, -0.0810), (-0.0596, -0.0465, -0.0293),
                 (-0.1448, -0.1463, -0.1189)),
    preview_bias=(0.2394, 0.2135, 0.1925),
)
# SD3/3.5's FlowMatchEulerDiscreteScheduler config (shift 3.0): what a single file without config gets.
SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0}


def transformer_prefix(shapes: Shapes) -> str | None:
    """"model.diffusion_model." (a whole checkpoint), "" (a transformer-only file), None (not SD3)."""
    return _flow.transformer_prefix(shapes, JOINT_BLOCK)


def recognises_header(shapes: Shapes) -> bool:
    return transformer_prefix(shapes) is not None


def header_problem(shapes: Shapes) -> str | None:
    prefix = transformer_prefix(shapes)
    shape = shapes.get(prefix + PATCH_EMBED)
    if shape is None or len(shape) != 4:
        return f"SD3 transformer without a 4-D {prefix}{PATCH_EMBED}: damaged or unsupported file"
    if shape[1] != LATENT.channels:
        return f"SD3 transformer with {shape[1]} input channels (expected {LATENT.channels}): unsupported variant"
    return None


def components_in_file(shapes: Shapes) -> set[str]:
    """The pipeline components a single file holds weights for."""
    return _flow.components_in_file(shapes, {"vae": (_ldm.VAE_PREFIX,), "text_encoder": (CLIP_L,),
                                             "text_encoder_2": (CLIP_G,), "text_encoder_3": (T5,)})


def assemble(pipe, clip: dict, t5: torch.Tensor | None, t5_negative: torch.Tensor | None) -> dict:
    """SD3's joint text embedding, as its pipeline's encode_prompt builds it: CLIP-L and CLIP-G hidden states
    side by side (768 + 1280), zero-padded to T5's width, then T5's tokens after them along the sequence.
    Without T5 its part is zeros of joint_attention_dim, as diffusers does."""
    def joint(clip_hidden: torch.Tensor, t5_hidden: torch.Tensor | None) -> torch.Tensor:
        width = pipe.transformer.config.joint_attention_dim
        if t5_hidden is None:
            t5_hidden = torch.zeros(clip_hidden.shape[0], TEXT.t5_max_length, width,
                                    device=clip_hidden.device, dtype=clip_hidden.dtype)
        padded = torch.nn.functional.pad(clip_hidden, (0, t5_hidden.shape[-1] - clip_hidden.shape[-1]))
        return torch.cat([padded, t5_hidden.to(padded.dtype)], dim=-2)

    return {"prompt_embeds": joint(clip["prompt_embeds"], t5),
            "negative_prompt_embeds": joint(clip["negative_prompt_embeds"], t5_negative),
            "pooled_prompt_embeds": clip["pooled_prompt_embeds"],
            "negative_pooled_prompt_embeds": clip["negative_pooled_prompt_embeds"]}


def convert_transformer(module: torch.nn.Module, config, checkpoint: dict) -> dict:
    from diffusers.loaders import single_file_utils as sfu

    keys = [k for k in checkpoint if k.startswith(_flow.PREFIX) or k.split(".", 1)[0] in _TRANSFORMER_ROOTS]
    return sfu.convert_sd3_transformer_checkpoint_to_diffusers({k: checkpoint[k] for k in keys})


_TRANSFORMER_ROOTS = {"joint_blocks", "x_embedder", "pos_embed", "t_embedder", "y_embedder", "context_embedder",
                      "final_layer"}


def clip_under(prefix: str):
    """CLIP-L / CLIP-G as SD3 files hold them: transformers' own key names under `prefix`."""
    def convert(module: torch.nn.Module, config, checkpoint: dict) -> dict:
        from diffusers.loaders import single_file_utils as sfu

        if not any(k.startswith(prefix) for k in checkpoint):
            raise KeyError(f"no text encoder weights under {prefix}")
        return _ldm._flattened(module, sfu.convert_ldm_clip_checkpoint(checkpoint, prefix))
    return convert


def convert_t5(module: torch.nn.Module, config, checkpoint: dict) -> dict:
    state = {k.removeprefix(T5): v for k, v in checkpoint.items() if k.startswith(T5)}
    if not state:
        raise KeyError(f"no T5 text encoder weights under {T5}")
    # transformers ties the encoder's embedding to `shared`; files hold one of the two.
    if "encoder.embed_tokens.weight" not in state and "shared.weight" in state:
        state["encoder.embed_tokens.weight"] = state["shared.weight"]
    return {k: v for k, v in state.items() if k in module.state_dict()}


TEXT = TextEncoderLayout(
    encoders=(("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")),
    pooled_from=("text_encoder", "text_encoder_2"), starts_at_penultimate=True,
    honours_attention_mask=False, layers_without_config=12,  # CLIP-L, the shallower
    t5=("tokenizer_3", "text_encoder_3"), t5_max_length=256, assemble=assemble,
)

SD3 = Family(
    name="sd3", label="SD 3/3.5", native_size=1024,
    pipelines=PIPELINES,
    components=("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"),
    latent=LATENT,
    text=TEXT,
    recognises_header=recognises_header,
    recognises_config=_flow.recognises_config(PIPELINES),
    denoiser="transformer",
    header_problem=header_problem,
    scheduler=SCHEDULER,
    skipped_components=_flow.SKIPPED_COMPONENTS,
    converters={"transformer": convert_transformer, "vae": _ldm.convert_vae, "text_encoder": clip_under(CLIP_L),
                "text_encoder_2": clip_under(CLIP_G), "text_encoder_3": convert_t5},
    # SAI model-spec names (VAE files carrying them get this family's latent format)
    modelspec=("stable-diffusion-v3-medium", "stable-diffusion-v3.5-medium", "stable-diffusion-v3.5-large",
               "stable-diffusion-v3.5-large-turbo"),
    sampler_kind="flow",
    sampler_names=("Euler", "Heun", "DPM++ 2M", "UniPC"),
    default_steps=28, default_cfg_scale=4.5,  # Stability's recommendation for 3.5 large (turbo: 4 steps, CFG 1)
    component_files={"vae": "VAE", "text_encoder": "CLIP-L text encoder", "text_encoder_2": "CLIP-G text encoder",
                     "text_encoder_3": "T5-XXL text encoder"},
    optional_components=("text_encoder_3",),
    components_in_file=components_in_file,
    component_sources={"vae": ("vae", _ldm.VAE_PREFIX), "text_encoder": ("clip", CLIP_L),
                       "text_encoder_2": ("clip", CLIP_G), "text_encoder_3": ("t5", T5)},
)

FAMILIES = (SD3,)
