"""Fused QKV projections: a UNet attention computes query, key and value with one matrix product instead of
three (key and value in one for a cross-attention), with the same numbers. On the full-size SD 1.5 UNet at
128² on this 2-core CPU, one torch thread, a step took 0.97x the CPU time in bf16 (the default path) and
1.00x in fp32 (bench/fused_qkv.py; wall-clock 0.90x, on a busy machine): a small gain, no loss.

diffusers' own fuse_qkv_projections adds concatenated copies (the attention weights twice in memory, layers
that the LoRA loaders and the state dict do not know). Here the weights stay the model's own parameters:
to_q, to_k and to_v's weights become consecutive slices of one tensor, so the memory, the state dict and the
cache's byte count are as before, and the product runs on the slices as one matrix. Each call checks that
they still are one matrix (where their data lies): whatever replaced a weight since (a dtype or device move,
a skeleton given the next checkpoint's weights, a LoRA layer wrapping a projection) makes that attention
compute its projections one by one, as diffusers' AttnProcessor2_0 does. So a LoRA's pictures are right
without undoing anything, and the fused path comes back for the next job without LoRAs (its adapters are
then disabled: the wrapped layers compute alone) and when the LoRA layers are removed.

Only diffusers' plain AttnProcessor2_0 attentions at least MIN_WIDTH wide are fused (SD 1.x, SD 2.x, SDXL UNets); the flow families'
transformers (SD3, FLUX, Z-Image) have their own processors and are left as they are, as are projections
with hooks on them (fp8 storage's layerwise casting) or weights that are not plain floating point (GGUF)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

from modules import compat

FLOATS = (torch.float32, torch.float16, torch.bfloat16)
# Narrower attentions stay unfused: on the built-in zoo-shapes (64 and 128 wide) a fused step measured 1.01x an
# unfused one (the per-call layout check costs what one product instead of three saves on such small matrices);
# every full-size UNet's attentions are 320 wide or more (SD 1.x/2.x 320-1280, SDXL 640-1280).
MIN_WIDTH = 320


def _plain(layer: nn.Module) -> bool:
    return (type(layer) is nn.Linear and type(layer.weight) is nn.Parameter and layer.weight.dtype in FLOATS
            and layer.weight.device.type != "meta" and not compat.has_forward_hooks(layer))


def _computing(layer: nn.Module) -> nn.Linear | None:
    """The plain Linear that computes `layer`'s output: itself, or the one a LoRA layer wraps while its
    adapters are disabled (a job without LoRAs after one with); None while an adapter is on."""
    if type(layer) is nn.Linear:
        return layer
    base = compat.disabled_lora_base(layer)
    return base if type(base) is nn.Linear else None


def _parts(attn: Attention) -> list[nn.Linear]:
    return [attn.to_k, attn.to_v] if attn.is_cross_attention else [attn.to_q, attn.to_k, attn.to_v]


def _joined(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
    """The one tensor the slices `tensors` are consecutive parts of, or None where they are not (any more).
    Runs at every attention call: data pointers only (a replaced weight lies elsewhere)."""
    first = tensors[0]
    if first is None:
        return None
    rows, at = 0, first.data_ptr()
    for t in tensors:
        if t is None or t.data_ptr() != at or t.dtype != first.dtype or not t.is_contiguous():
            return None
        at += t.numel() * t.element_size()
        rows += t.shape[0]
    try:  # torch checks that this lies within `first`'s own storage: neighbours in memory by chance fail here
        return first.as_strided((rows, *first.shape[1:]), first.stride())
    except RuntimeError:
        return None


def fused_weights(attn: Attention) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(weight, bias) of the attention's projections as one matrix, or None to compute them one by one."""
    parts = [_computing(layer) for layer in _parts(attn)]
    if any(layer is None for layer in parts):  # a LoRA adapter is on: each projection with its own
        return None
    weight = _joined([layer.weight for layer in parts])
    if weight is None:
        return None
    if parts[0].bias is None:
        return weight, None
    bias = _joined([layer.bias for layer in parts])
    return (weight, bias) if bias is not None else None


def fuse(denoiser: nn.Module) -> int:
    """Lay the projections of each plain attention of `denoiser` out as one matrix (the same values) and give
    it the fused processor; the number of attentions fused. Again on the same model: only what came apart."""
    count = 0
    with torch.no_grad():
        for attn in denoiser.modules():
            if not isinstance(attn, Attention) or type(attn.processor) not in (AttnProcessor2_0, FusedProjections):
                continue
            parts = _parts(attn)
            if not all(_plain(layer) for layer in parts) or len({layer.in_features for layer in parts}) != 1:
                continue
            if parts[0].out_features < MIN_WIDTH:
                continue
            if len({p.bias is None for p in parts}) != 1 or len({p.weight.dtype for p in parts}) != 1:
                continue
            if fused_weights(attn) is None:
                for name in ("weight", "bias"):
                    tensors = [getattr(layer, name) for layer in parts]
                    if tensors[0] is not None:
                        joined = torch.cat([t.data for t in tensors])
                        start = 0
                        for t in tensors:  # the same Parameter objects, their data now slices of `joined`
                            t.data = joined[start:start + t.shape[0]]
                            start += t.shape[0]
            attn.set_processor(FusedProjections())
            count += 1
    return count


def projections(attn: Attention, hidden_states: torch.Tensor, context: torch.Tensor | None = None):
    """(query, key, value) of `hidden_states` (keys and values of `context` where given), with one product where
    the attention's weights are one matrix."""
    fused = fused_weights(attn)
    if fused is None:
        source = hidden_states if context is None else context
        return attn.to_q(hidden_states), attn.to_k(source), attn.to_v(source)
    weight, bias = fused
    if attn.is_cross_attention:
        key, value = F.linear(hidden_states if context is None else context, weight, bias).chunk(2, dim=-1)
        return attn.to_q(hidden_states), key, value
    if context is not None:  # a self-attention asked about another sequence: not what its weights fuse
        return attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
    return F.linear(hidden_states, weight, bias).chunk(3, dim=-1)


def attention_heads(attn: Attention, hidden_states: torch.Tensor, context: torch.Tensor | None = None):
    """(query, key, value) split into heads, [batch, heads, positions, head_dim], with the attention's q/k
    norms applied: what AttnProcessor2_0 does before scaled_dot_product_attention."""
    batch_size = hidden_states.shape[0]
    query, key, value = projections(attn, hidden_states, context)
    head_dim = key.shape[-1] // attn.heads
    query, key, value = (t.reshape(batch_size, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value))
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    return query, key, value


class FusedProjections(AttnProcessor2_0):
    """AttnProcessor2_0 with the projections taken by `projections`. Anything it does not fuse (a mask, a
    spatial or cross norm, 4-D input, extra arguments) goes to AttnProcessor2_0 itself."""

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None,
                 attention_mask=None, temb=None, *args, **kwargs) -> torch.Tensor:
        if (attention_mask is not None or attn.spatial_norm is not None or attn.group_norm is not None
                or hidden_states.ndim != 3 or args or kwargs
                or (encoder_hidden_states is not None and attn.norm_cross)):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        residual, batch_size = hidden_states, hidden_states.shape[0]
        query, key, value = attention_heads(attn, hidden_states, encoder_hidden_states)
        hidden_states = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * query.shape[-1]).to(query.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor
