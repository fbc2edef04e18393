"""Interrupt inside a step: a check before every sub-block of the UNet (and of the VAE decoder).

One sampling step is one UNet call; at 2048² on a CPU that call alone takes minutes, so a check between
steps is not enough. A check before the blocks (down, mid, up) and before every module inside one that has
modules of its own (resnets, attention and transformer blocks, up/downsamplers) raises the job's Interrupted
between two of them. One self-attention over a large image is itself minutes (65536 positions at 2048²), so
there the queries are taken a slice at a time, with a check between slices (the same numbers: each query's
row is independent of the others).

The pipeline is shared, cached state: these modules' forwards and attention processors are changed for one job,
while it holds the device lock (so no other job runs these modules meanwhile), and always put back after, even
on error.
A compiled denoiser (--compile) gets none: the job stops between steps, as A1111 does."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

from modules.models import compiled
from modules.models.fused_qkv import FusedProjections, attention_heads

# Scores per slice of a self-attention (queries × keys); above it the queries are sliced. 4096² (a 512² image
# for SD 1.x) is not sliced, so the usual sizes run exactly as before.
SLICE_SCORES = 4096 * 4096
# Below this many pixels a denoiser call is short (the built-in model at 32²: ~6 ms on a CPU; a full-size SD 1.5
# at 128²: ~0.5 s), so its blocks alone are stop points: checking before every module inside them too (800 checks
# a job on the built-in model) and routing each attention through the slicing processor was ~1-2 % of such a job.
FINE_PIXELS = 256 * 256


def stop_points(model: nn.Module, fine: bool = True) -> list[nn.Module]:
    """The modules of a UNet or VAE decoder before which a check costs nothing next to their work: the blocks
    (down, mid, up), and with `fine` every module inside them that has modules of its own."""
    roots = [*getattr(model, "down_blocks", ()), getattr(model, "mid_block", None), *getattr(model, "up_blocks", ())]
    if not fine:
        return [root for root in roots if root is not None]
    found = []
    for root in roots:
        if root is not None:
            found += [m for m in root.modules() if next(m.children(), None) is not None
                      and not isinstance(m, (nn.ModuleList, nn.ModuleDict))]
    return found


@contextmanager
def checked(model: nn.Module | None, check: Callable[[], None], pixels: int | None = None) -> Iterator[None]:
    """`check()` (which raises to stop) runs before each of the model's stop points while inside, and between
    the slices of a long self-attention. `pixels`: the job's picture size (width x height); below FINE_PIXELS
    only the blocks are checked and no attention is sliced (none would be at that size).

    The check goes in as the stop point's own `forward` (on that instance, for the job), calling the class's
    after it: a forward pre-hook would do the same, but any hook sends every call of its module through torch's
    slower general path (800 calls a job on the built-in model: the largest part of the app's own per-job work
    in a profile against bare diffusers)."""
    forwards, processors = [], []
    if compiled.is_compiled(model):  # --compile: anything inside would make torch compile again every job
        yield
        return
    try:
        fine = pixels is None or pixels >= FINE_PIXELS
        for module in stop_points(model, fine) if model is not None else ():
            forwards.append((module, module.__dict__.get("forward")))
            module.forward = _CheckedForward(module.forward, check)
            if fine and isinstance(module, Attention) and type(module.processor) in (AttnProcessor2_0, FusedProjections):
                processors.append((module, module.processor))
                module.processor = SlicedSelfAttention(module.processor, check)
        yield
    finally:
        for module, forward in reversed(forwards):  # each as it was: the class's, or the instance's own
            if forward is None:
                del module.forward
            else:
                module.forward = forward
        for module, processor in processors:
            module.processor = processor


def is_checked(module: nn.Module) -> bool:
    """Whether `module` checks before it runs (inside `checked`)."""
    return isinstance(module.__dict__.get("forward"), _CheckedForward)


class _CheckedForward:
    """A module's forward with `check()` before it (a class, not a closure: is_checked knows it)."""

    __slots__ = ("forward", "check", "__wrapped__")

    def __init__(self, forward: Callable, check: Callable[[], None]):
        self.forward, self.check, self.__wrapped__ = forward, check, forward  # inspect.signature follows it

    def __call__(self, *args, **kwargs):
        self.check()
        return self.forward(*args, **kwargs)


class SlicedSelfAttention:
    """diffusers' AttnProcessor2_0 (or our FusedProjections), with a long self-attention computed a slice of queries at a time and
    `check()` between slices. Anything else (cross-attention, masks, short sequences) goes to the original."""

    def __init__(self, original: AttnProcessor2_0, check: Callable[[], None]):
        self.original, self.check = original, check

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs) -> torch.Tensor:
        positions = hidden_states.shape[1] if hidden_states.ndim == 3 else hidden_states[0, 0].numel()
        if (encoder_hidden_states is not None or attention_mask is not None or attn.spatial_norm is not None
                or args or kwargs or positions * positions <= SLICE_SCORES):
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        # What AttnProcessor2_0 does for a self-attention, but for the scaled_dot_product_attention call.
        residual, input_ndim = hidden_states, hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query, key, value = attention_heads(attn, hidden_states)  # one product where they are fused
        head_dim = query.shape[-1]
        size = max(SLICE_SCORES // positions, 64)
        slices = []
        for start in range(0, positions, size):
            self.check()
            slices.append(F.scaled_dot_product_attention(query[:, :, start:start + size], key, value,
                                                         dropout_p=0.0, is_causal=False))
        hidden_states = torch.cat(slices, dim=2)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor
