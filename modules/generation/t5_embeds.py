"""T5-XXL embeddings for SD3 and FLUX: the prompt with A1111's emphasis syntax stripped, as Forge does.

Emphasis (`(word:1.3)`, `[word]`) and `BREAK` shape only the CLIP encoders' part of the embedding; T5
receives the plain words. Weighting T5's tokens is not supported: its embedding has no "original mean" to
restore the way A1111 rescales CLIP's, and neither diffusers nor Forge define one. Up to the family's token
count (SD3 256, FLUX.1 dev 512, schnell 256) is read; longer prompts are cut there, as the pipelines do."""
from __future__ import annotations

import torch
from diffusers.utils.torch_utils import get_module_execution_device

from modules.generation.prompt_parser import is_break, parse_prompt_attention
from modules.models.families import TextEncoderLayout


def plain_text(prompt: str) -> str:
    """`prompt` without emphasis brackets, weights or BREAK: what T5 reads."""
    words = [text for text, weight in (f for f in parse_prompt_attention(prompt)) if not is_break((text, weight))]
    return " ".join(part.strip() for part in words if part.strip())


def encode(pipe, layout: TextEncoderLayout, prompts: list[str], negative_prompts: list[str],
           device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """T5's hidden states `(batch, t5_max_length, dim)` for the prompts and the negative prompts, or
    (None, None) when the pipeline has no T5 (SD3 without it: the family puts zeros there)."""
    tokenizer_name, encoder_name = layout.t5
    tokenizer, encoder = getattr(pipe, tokenizer_name, None), getattr(pipe, encoder_name, None)
    if tokenizer is None or encoder is None:
        return None, None

    def run(texts: list[str]) -> torch.Tensor:
        distinct = list(dict.fromkeys(plain_text(t) for t in texts))
        ids = tokenizer(distinct, padding="max_length", max_length=layout.t5_max_length, truncation=True,
                        add_special_tokens=True, return_tensors="pt").input_ids
        hidden = encoder(ids.to(get_module_execution_device(encoder)), output_hidden_states=False)[0]
        rows = [distinct.index(plain_text(t)) for t in texts]
        return hidden[rows].to(device=device, dtype=dtype)

    with torch.no_grad():
        return run(prompts), run(negative_prompts)
