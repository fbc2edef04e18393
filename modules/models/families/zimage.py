"""Z-Image (Tongyi-MAI's Z-Image Turbo, 6B): a single-stream DiT (Lumina 2's NextDiT shape: noise and caption
refiners, then `layers`) on the FLUX VAE's 16-channel latents, Qwen3-4B as the text encoder (its second-to-last
hidden states, the prompt in Qwen's chat template), flow matching with shift 3, 1024×1024.

Turbo is distilled for about 8 steps without guidance: its CFG scale is 1 (off). The pipeline's guidance_scale g
gives pos + g·(pos − neg), which is A1111's CFG scale minus one, so a CFG scale above 1 is real CFG with the
negative prompt (two model calls per step) and below 1 is refused. The base model (same tensors) wants CFG
and more steps: the user sets them.

Files as published: ComfyUI's z_image_turbo_bf16.safetensors is transformer-only (`layers.*`, `noise_refiner.*`,
`context_refiner.*`, `cap_embedder.*`, `x_embedder.*`, `final_layer.*`, fused `attention.qkv`, no prefix; some
carry model.diffusion_model.), with the FLUX VAE (ae.safetensors, models/VAE) and qwen_3_4b.safetensors
(models/text_encoder: transformers' Qwen3 names under `model.`) as separate files. The transformer's key map is
diffusers' convert_z_image_transformer_checkpoint_to_diffusers. Lumina 2 shares the layout: ComfyUI tells them
apart by the width (Z-Image 3840, Lumina 2 2304), diffusers by `layers.0.adaLN_modulation.0` (Lumina 2's
modulation is `.1`, after a SiLU); this file takes diffusers' key and the caption embedder, and refuses a
caption width other than a Qwen3 encoder's.

Prompts: Qwen3 reads the plain prompt (A1111's emphasis stripped, as T5 does for SD3/FLUX), at most 512 tokens
with the template, as the pipeline does. img2img, inpainting and the hires fix: diffusers' ZImageImg2ImgPipeline and
ZImageInpaintPipeline around the cached modules; they expect pictures, and take the latents the img2img capability
hands every family through compat.reads_latents. LoRAs: diffusers' Z-Image LoRA loader on the transformer
(modules/models/lora_adapters.py). Not here: prompt editing; clip skip (no CLIP: refused when a job asks)."""
from __future__ import annotations

import torch

from modules.models.families import Family, Shapes, TextEncoderLayout, _flow, _ldm, flux

MODULATION = "layers.0.adaLN_modulation.0.weight"  # diffusers' "z-image-turbo" key
CAPTION = "cap_embedder.1.weight"  # (dim, caption width): Qwen3-4B's 2560 for Z-Image
IMAGE_IN = "x_embedder.weight"  # (dim, 16 channels × 2 × 2)
PATCH = 2
TEXT_ENCODER_PREFIX = "text_encoders.qwen3_4b."  # where a whole checkpoint holds Qwen3 (ComfyUI's name)
PIPELINES = {"txt2img": "ZImagePipeline", "img2img": "ZImageImg2ImgPipeline", "inpaint": "ZImageInpaintPipeline"}
MAX_TOKENS = 512  # the pipeline's max_sequence_length: the chat template and prompt together

# Tongyi-MAI/Z-Image-Turbo's scheduler_config.json: FlowMatchEulerDiscreteScheduler, static shift 3.
SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": False}


def transformer_prefix(shapes: Shapes) -> str | None:
    return _flow.transformer_prefix(shapes, MODULATION, CAPTION)


def recognises_header(shapes: Shapes) -> bool:
    return transformer_prefix(shapes) is not None


def header_problem(shapes: Shapes) -> str | None:
    prefix = transformer_prefix(shapes)
    image_in, caption = shapes.get(prefix + IMAGE_IN), shapes.get(prefix + CAPTION)
    patch = flux.LATENT.channels * PATCH * PATCH
    if image_in is None or len(image_in) != 2 or image_in[1] != patch:
        return (f"Z-Image transformer without a {prefix}{IMAGE_IN} of {patch} input features: damaged or an "
                "unsupported variant")
    if caption is None or len(caption) != 2 or caption[0] != image_in[0]:
        return f"Z-Image transformer with a {prefix}{CAPTION} of shape {caption}: damaged or unsupported file"
    return None


def components_in_file(shapes: Shapes) -> set[str]:
    return _flow.components_in_file(shapes, {"vae": _flow.VAE_PREFIXES, "text_encoder": (TEXT_ENCODER_PREFIX,)})


def convert_transformer(module: torch.nn.Module, config, checkpoint: dict) -> dict:
    from diffusers.loaders import single_file_utils as sfu

    prefix = transformer_prefix({k: [] for k in checkpoint}) or ""
    roots = {"layers", "noise_refiner", "context_refiner", "cap_embedder", "x_embedder", "final_layer",
             "t_embedder", "x_pad_token", "cap_pad_token", "norm_final"}
    own = {k: v for k, v in checkpoint.items()
           if k.startswith(prefix) and k[len(prefix):].split(".", 1)[0] in roots}
    return sfu.convert_z_image_transformer_checkpoint_to_diffusers(own)


def convert_text_encoder(module: torch.nn.Module, config, checkpoint: dict) -> dict:
    """Qwen3 as transformers names it (Qwen3Model: embed_tokens, layers, norm), from a whole checkpoint's
    text_encoders.qwen3_4b.[transformer.] or a qwen_3_4b.safetensors file's model.* (a causal LM's lm_head
    is left: the pipeline reads hidden states)."""
    state = {}
    for key, value in checkpoint.items():
        if not key.startswith(TEXT_ENCODER_PREFIX):
            continue
        name = key[len(TEXT_ENCODER_PREFIX):].removeprefix("transformer.").removeprefix("model.")
        state[name] = value
    if not state:
        raise KeyError(f"no Qwen3 text encoder weights under {TEXT_ENCODER_PREFIX}")
    return {k: v for k, v in state.items() if k in module.state_dict()}


def to_original(state: dict) -> dict:
    """A diffusers Z-Image transformer's state dict in the published layout (tests write such files with it):
    the inverse of diffusers' converter."""
    out: dict = {}
    renames = (("all_final_layer.2-1.", "final_layer."), ("all_x_embedder.2-1.", "x_embedder."),
               (".attention.to_out.0.", ".attention.out."), (".attention.norm_k.", ".attention.k_norm."),
               (".attention.norm_q.", ".attention.q_norm."))
    for key, value in state.items():
        if ".attention.to_k." in key or ".attention.to_v." in key:
            continue
        if ".attention.to_q." in key:
            parts = [state[key.replace("to_q", name)] for name in ("to_q", "to_k", "to_v")]
            out[key.replace(".attention.to_q.", ".attention.qkv.")] = torch.cat(parts, dim=0)
            continue
        for old, new in renames:
            key = key.replace(old, new)
        out[key] = value
    return out


def encode(pipe, prompts: list[str], negative_prompts: list[str]) -> dict:
    """Qwen3's embeddings as ZImagePipeline's own encode_prompt makes them: a list of (tokens, width) tensors,
    one per prompt, each as long as its prompt (the transformer pads captions itself). The plain prompt."""
    from diffusers.utils.torch_utils import get_module_execution_device

    from modules.generation.t5_embeds import plain_text

    if getattr(pipe, "text_encoder", None) is None or getattr(pipe, "tokenizer", None) is None:
        raise ValueError("Z-Image needs its Qwen3 text encoder")
    device = get_module_execution_device(pipe.text_encoder)

    def run(texts: list[str]) -> list[torch.Tensor]:
        distinct = list(dict.fromkeys(plain_text(t) for t in texts))
        encoded = pipe.encode_prompt(list(distinct), device=device, do_classifier_free_guidance=False,
                                     max_sequence_length=MAX_TOKENS)[0]
        return [encoded[distinct.index(plain_text(t))] for t in texts]

    with torch.no_grad():
        return {"prompt_embeds": run(prompts), "negative_prompt_embeds": run(negative_prompts)}


def float_latents(latents: torch.Tensor, pipe) -> torch.Tensor:
    """The pipeline samples in float32 whatever the model's dtype (it asserts so after each step)."""
    return latents.float()


TEXT = TextEncoderLayout(encoders=(), layers_without_config=1, embedding_keys=(), encode=encode)

ZIMAGE = Family(
    name="zimage", label="Z-Image", native_size=1024,
    pipelines=PIPELINES,
    components=("transformer", "vae", "text_encoder"),
    latent=flux.LATENT,  # the FLUX.1 VAE
    text=TEXT,
    recognises_header=recognises_header,
    recognises_config=_flow.recognises_config(PIPELINES),
    denoiser="transformer",
    header_problem=header_problem,
    scheduler=SCHEDULER,
    skipped_components=_flow.SKIPPED_COMPONENTS,
    converters={"transformer": convert_transformer, "vae": _ldm.convert_vae, "text_encoder": convert_text_encoder},
    # Its transformer takes the prompt as a list of per-prompt features, not SD3/FLUX's named text inputs that
    # transformer_conditioning.py switches per step.
    refusals={"clip skip": "clip skip has no effect on Z-Image models: they have no CLIP text encoder (Qwen3 reads "
                           "the prompt)",
              "prompt editing": "prompt editing and alternation ([a:b:when], [a|b]) are not supported on Z-Image "
                                "yet"},
    sampler_kind="flow",
    # The pipeline hands the scheduler its own sigmas (a list): Heun and DPM++ 2M take none, and diffusers 0.42.1's
    # UniPC fails on a list. Euler is the pipeline's own scheduler.
    sampler_names=("Euler",),
    default_steps=8, default_cfg_scale=1.0,  # Turbo: 8 steps, guidance off (diffusers' example, the model card)
    guidance_kind="cfg_minus_one",
    pack_latents=float_latents,
    size_multiple=16,  # its pipelines: 8× VAE latents in 2×2 patches
    component_files={"vae": "VAE", "text_encoder": "Qwen3 text encoder"},
    components_in_file=components_in_file,
    component_sources={"vae": ("vae", _ldm.VAE_PREFIX), "text_encoder": ("qwen3", TEXT_ENCODER_PREFIX)},
)

FAMILIES = (ZIMAGE,)
