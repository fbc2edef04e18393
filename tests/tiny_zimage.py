"""A tiny random-weight Z-Image, built offline: a ZImagePipeline folder, and the single files as published
(ComfyUI's transformer-only z_image_turbo file with ae.safetensors in models/VAE and qwen_3_4b in
models/text_encoder; an all-in-one checkpoint with ComfyUI's prefixes).

Shapes: the FLUX-style 16-channel VAE of tiny_flow_models, Qwen3 of hidden 32 (2 layers, 2 heads of 16, one
key/value head), a transformer of dim 32 (2 heads, 2 layers, one refiner layer each). The tokenizer is
byte-level BPE without merges (every byte a token) plus Qwen's chat tokens, with a chat template that writes
the prompt as Qwen3's does with enable_thinking; nothing is downloaded."""
from __future__ import annotations

from pathlib import Path

import torch

from tests import tiny_flow_models
from tests.convert_to_single_file import vae_to_original

SEED = 0
QWEN_WIDTH = 32
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and "
                 "enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte → printable character table, which Qwen's byte-level BPE uses."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))


def make_qwen_tokenizer(folder: Path):
    from transformers import Qwen2Tokenizer

    vocab = {c: i for i, c in enumerate(_bytes_to_unicode().values())}
    for token in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, eos_token="<|im_end|>",
                               pad_token="<|endoftext|>", additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    tokenizer.chat_template = CHAT_TEMPLATE
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def make_tiny_zimage(folder: str | Path) -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    from modules.models.families import zimage

    folder = Path(folder)
    tokenizer = make_qwen_tokenizer(folder / "tokenizer")
    torch.manual_seed(SEED)
    text_encoder = Qwen3Model(Qwen3Config(vocab_size=len(tokenizer), hidden_size=QWEN_WIDTH, intermediate_size=64,
                                          num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                          head_dim=16, max_position_embeddings=1024, tie_word_embeddings=False))
    transformer = ZImageTransformer2DModel(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32,
                                           n_layers=2, n_refiner_layers=1, n_heads=2, n_kv_heads=2,
                                           cap_feat_dim=QWEN_WIDTH, axes_dims=[4, 6, 6], axes_lens=[1536, 64, 64])
    pipe = ZImagePipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(**zimage.SCHEDULER),
                          vae=tiny_flow_models._vae16(0.3611, 0.1159), text_encoder=text_encoder, tokenizer=tokenizer)
    pipe.save_pretrained(str(folder))
    return folder


def file_parts(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The folder's weights as published: "transformer" (no prefix, fused qkv), "vae" (ae.safetensors) and
    "qwen3" (qwen_3_4b.safetensors: transformers' names under model.)."""
    from diffusers import ZImagePipeline

    from modules.models.families import zimage

    pipe = ZImagePipeline.from_pretrained(str(folder), local_files_only=True)
    return {"transformer": zimage.to_original(pipe.transformer.state_dict()),
            "vae": vae_to_original(pipe.vae.state_dict()),
            "qwen3": {"model." + k: v for k, v in pipe.text_encoder.state_dict().items()}}


def make_component_files(folder: Path, models: Path, name: str = "z-image-tiny",
                         with_sidecar: bool = True) -> dict[str, Path]:
    """The transformer-only file in models/Stable-diffusion, ae.safetensors in models/VAE, the Qwen3 file in
    models/text_encoder. Returns their paths by part."""
    parts = file_parts(folder)
    save = tiny_flow_models._save
    paths = {
        "transformer": save(parts["transformer"], models / "Stable-diffusion" / f"{name}.safetensors"),
        "vae": save(parts["vae"], models / "VAE" / f"{name}-ae.safetensors"),
        "qwen3": save(parts["qwen3"], models / "text_encoder" / f"{name}-qwen_3_4b.safetensors"),
    }
    if with_sidecar:
        tiny_flow_models.sidecar(folder, paths["transformer"])
    return paths


def make_checkpoint_file(folder: Path, out: Path) -> Path:
    """An all-in-one file with ComfyUI's prefixes: model.diffusion_model., vae., text_encoders.qwen3_4b.transformer."""
    parts = file_parts(folder)
    state = {"model.diffusion_model." + k: v for k, v in parts["transformer"].items()}
    state.update({"vae." + k: v for k, v in parts["vae"].items()})
    state.update({"text_encoders.qwen3_4b.transformer." + k: v for k, v in parts["qwen3"].items()})
    tiny_flow_models._save(state, out)
    tiny_flow_models.sidecar(folder, out)
    return out
