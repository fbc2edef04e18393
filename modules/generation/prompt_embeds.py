"""Prompt embeddings the way AUTOMATIC1111's webui makes them, for diffusers pipelines.

`encode_prompts` replaces a pipeline's own text encoding so that prompts get A1111's
emphasis syntax (see `prompt_parser.py`) and may be longer than CLIP's 77 tokens:

1. the prompt is parsed into weighted fragments; each is tokenized without special tokens;
2. the tokens are cut into chunks of 75 (at the last comma among the final 20 tokens when
   there is one, and wherever `BREAK` says); each chunk becomes BOS + 75 + EOS = 77 ids,
   with everything after the first EOS set to the tokenizer's pad token, exactly as
   the pipeline's own tokenizer call would pad it;
3. each chunk is encoded on its own; every token's hidden state is multiplied by its weight,
   then the chunk is rescaled so its mean equals the unweighted mean ("restore original mean");
4. the chunks are concatenated along the sequence: 77, 154, 231 ... tokens.

A prompt without emphasis that fits in 75 tokens gives exactly the pipeline's own embeddings.
SD3 and FLUX also have a T5 encoder: it reads the prompt with the emphasis syntax stripped
(t5_embeds.py), and the family joins the CLIP and T5 parts as its pipeline does. A family with another
encoder (Z-Image's Qwen3) encodes the prompts itself (its layout's `encode`).
Which encoders there are, which gives the pooled embedding and which layer clip skip counts
from is the checkpoint family's text encoder layout (modules/models/families).
"""
from __future__ import annotations

import functools
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from diffusers.loaders import TextualInversionLoaderMixin
from diffusers.utils.torch_utils import get_module_execution_device

from modules.errors import InvalidRequest
from modules.generation import t5_embeds
from modules.generation.prompt_parser import is_break, parse_prompt_attention
from modules.models import families
from modules.models.families import TextEncoderLayout

CHUNK_LENGTH = 75
"""Prompt tokens per chunk; BOS and EOS make it CLIP's 77."""

MAX_PROMPT_CHUNKS = 32
"""Most chunks one prompt may take (32 × 75 = 2400 tokens, far beyond real prompts). Every chunk is one
text encoder call and widens the UNet's cross-attention, so the cap bounds the work of a job."""

COMMA_BACKTRACK = 20
"""A full chunk is cut after its last comma if that comma is among its final this-many tokens
(A1111's "comma_padding_backtrack" default)."""


EMBEDDING_PLACEHOLDER = 0
"""The token id an embedding's slots hold until its vectors replace their input embeddings (A1111's)."""


@dataclass
class PromptChunk:
    """One CLIP window of a prompt: 77 token ids and the weight of each; `fixes` are textual-inversion
    embeddings in it: (position in token_ids, vectors) whose rows replace those tokens' input embeddings."""

    token_ids: list[int]
    weights: list[float]
    fixes: list[tuple[int, torch.Tensor]] = field(default_factory=list)


@dataclass(frozen=True)
class _TextEncoderSlot:
    tokenizer: object
    text_encoder: torch.nn.Module
    layout: TextEncoderLayout  # the checkpoint family's
    gives_pooled: bool

    @functools.cached_property
    def device(self) -> torch.device:
        """The encoder's execution device, found once per encoding (diffusers walks all its modules for it)."""
        return get_module_execution_device(self.text_encoder)


def encode_prompts(
    pipe,
    prompts: list[str],
    negative_prompts: list[str],
    clip_skip: int = 1,
    embeddings=None,
) -> dict[str, torch.Tensor]:
    """Encode a batch of prompts and negative prompts into keyword arguments for `pipe(...)`.

    Returns `prompt_embeds` and `negative_prompt_embeds`, both `(batch, 77 * chunks, dim)`
    with the same number of chunks for every prompt and negative prompt; for an SDXL
    pipeline also `pooled_prompt_embeds` and `negative_pooled_prompt_embeds`
    `(batch, dim)`, taken from text_encoder_2 on each prompt's first chunk.

    `clip_skip` counts as A1111's "Clip skip": 1 uses the last layer, 2 the penultimate
    (with the final layer norm, for SD 1.x/2.x). SDXL always starts from the penultimate
    layer, as diffusers does, and `clip_skip` n steps n - 1 layers further back.

    For SDXL pipelines whose config asks to `force_zeros_for_empty_prompt`, an empty
    negative prompt is all zeros, as A1111 does (diffusers does it when no negative is given).

    `embeddings` (a modules.networks.embeddings.PromptEmbeddings) are the textual-inversion embeddings the
    prompts may name: a name's tokens give way to its vectors, weighted like the words around them.

    The pipeline is not changed; tensors come back on the text encoder's execution device,
    in the dtype the pipeline itself would use.
    """
    if not prompts:
        raise ValueError("no prompts to encode")
    if len(prompts) != len(negative_prompts):
        raise ValueError(
            f"got {len(prompts)} prompts but {len(negative_prompts)} negative prompts; they pair up one to one"
        )
    if clip_skip < 1:
        raise ValueError(f"clip_skip counts from 1 (last layer), got {clip_skip}")

    layout, slots = _text_encoder_slots(pipe)
    if layout.encode is not None:  # neither CLIP nor T5 (Z-Image's Qwen3): the family encodes the plain prompt
        return layout.encode(pipe, prompts, negative_prompts)
    if not slots:
        raise ValueError(f"{type(pipe).__name__} has no CLIP text encoder to encode prompts with")
    for slot in slots:
        layers = getattr(slot.text_encoder.config, "num_hidden_layers", None)
        if isinstance(layers, int) and clip_skip > layers:
            raise InvalidRequest("clip_skip", f"is {clip_skip}, but this checkpoint's text encoder has only {layers} "
                                              f"layers: use 1 to {layers}")
    zero_empty_negatives = layout.zeros_for_empty_negative and bool(getattr(pipe.config, "force_zeros_for_empty_prompt",
                                                                             False))

    # Every prompt and negative prompt of the batch gets the same number of chunks.
    fields = {**{text: "negative_prompt" for text in negative_prompts}, **{text: "prompt" for text in prompts}}
    chunks_by_slot = [
        {text: tokenize_prompt(slot.tokenizer, text, pipe, field, embeddings, index) for text, field in fields.items()}
        for index, slot in enumerate(slots)
    ]
    chunk_count = max(len(chunks) for per_text in chunks_by_slot for chunks in per_text.values())

    output_encoder = slots[-1].text_encoder  # the pipeline's own choice of dtype
    device = slots[-1].device
    dtype = output_encoder.dtype

    def encode_batch(batch: list[str], zero_empty: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Prompts and negatives are two encoder batches, as in the pipeline's own encode_prompt,
        # so that a plain prompt gives bit-identical results; a repeated text is encoded once.
        distinct = list(dict.fromkeys(batch))
        hidden, pooled = _encode_texts(slots, chunks_by_slot, distinct, chunk_count, clip_skip)
        rows = [distinct.index(text) for text in batch]
        empty = torch.tensor([zero_empty and text == "" for text in batch], device=device)
        hidden = _zero_rows(hidden[rows].to(device=device, dtype=dtype), empty)
        if pooled is not None:
            pooled = _zero_rows(pooled[rows].to(device=device, dtype=dtype), empty)
        return hidden, pooled

    with torch.no_grad():
        prompt_embeds, pooled = encode_batch(prompts, zero_empty=False)
        negative_prompt_embeds, negative_pooled = encode_batch(negative_prompts, zero_empty=zero_empty_negatives)

    result = {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds}
    if layout.assemble is not None:  # SD3, FLUX: T5 reads the plain prompt, then the family joins the parts
        result = {**result, "pooled_prompt_embeds": pooled, "negative_pooled_prompt_embeds": negative_pooled}
        t5, t5_negative = t5_embeds.encode(pipe, layout, prompts, negative_prompts, device, dtype)
        return layout.assemble(pipe, result, t5, t5_negative)
    if layout.pooled_from:
        if pooled is None or negative_pooled is None:
            raise ValueError(f"{type(pipe).__name__} has no {layout.pooled_from} to take the pooled embedding from")
        result["pooled_prompt_embeds"] = pooled
        result["negative_pooled_prompt_embeds"] = negative_pooled
    return result


def longest_chunks(pipe, texts: list[str], field: str = "prompt") -> int:
    """The most chunks any of `texts` takes with the pipeline's first tokenizer (what encode_prompts pads every
    text to); an over-long text is an InvalidRequest naming `field`."""
    _, slots = _text_encoder_slots(pipe)
    if not slots:
        return 1
    return max(len(tokenize_prompt(slots[0].tokenizer, text, None, field)) for text in texts)


_COMMA_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _comma_id(tokenizer) -> int | None:
    """The id of "," ending a word, or None: kept per tokenizer (get_vocab builds the whole vocabulary anew,
    ~0.1 ms a call; textual inversion adds tokens, never changes this one)."""
    try:
        return _COMMA_IDS[tokenizer]
    except (KeyError, TypeError):
        found = tokenizer.get_vocab().get(",</w>")
    try:
        _COMMA_IDS[tokenizer] = found
    except TypeError:  # a tokenizer without weak references: looked up each time
        pass
    return found


def chunk_length(tokenizer) -> int:
    """Prompt tokens per chunk: 75 for every SD text encoder (77 with BOS and EOS); fewer for a
    text encoder trained on shorter sequences, such as the built-in zoo model's."""
    return min(int(tokenizer.model_max_length), CHUNK_LENGTH + 2) - 2


def tokenize_prompt(tokenizer, prompt: str, pipe=None, field: str = "prompt", embeddings=None,
                    encoder_index: int = 0) -> list[PromptChunk]:
    """Cut `prompt` into 77-token chunks with per-token weights, following A1111.

    `pipe`, when given and able to, expands multi-vector textual inversion tokens first.
    `embeddings` (PromptEmbeddings): a name's tokens become as many placeholder slots as the embedding has
    vectors (text encoder `encoder_index`'s), never split between chunks, with the fragment's weight.
    More than MAX_PROMPT_CHUNKS chunks is an InvalidRequest naming `field`.
    """
    fragments = parse_prompt_attention(prompt)
    texts = [text for text, _ in fragments]
    if isinstance(pipe, TextualInversionLoaderMixin) and _has_multi_vector_tokens(tokenizer):
        # Only then: maybe_convert_prompt calls tokenizer.tokenize, which logs a false "sequence length is longer
        # than the specified maximum" for any long prompt (we chunk it), and changes nothing without such tokens.
        texts = [pipe.maybe_convert_prompt(text, tokenizer) for text in texts]
    ids_per_fragment = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    comma_id = _comma_id(tokenizer)

    length = chunk_length(tokenizer)
    matcher = embeddings.matcher(tokenizer) if embeddings is not None else None
    chunks: list[PromptChunk] = []
    tokens: list[int] = []
    weights: list[float] = []
    fixes: list[tuple[int, torch.Tensor]] = []  # (position among `tokens`, vectors)
    last_comma = -1

    def close_chunk() -> None:
        nonlocal tokens, weights, fixes, last_comma
        if len(chunks) == MAX_PROMPT_CHUNKS:
            raise InvalidRequest(field, f"is longer than {MAX_PROMPT_CHUNKS} chunks of {length} tokens "
                                        f"({MAX_PROMPT_CHUNKS * length} tokens, counting each BREAK as a chunk's end): "
                                        "shorten it")
        chunk = _wrap_chunk(tokenizer, tokens, weights)
        chunk.fixes = [(position + 1, vectors) for position, vectors in fixes]  # + 1: after BOS
        chunks.append(chunk)
        tokens, weights, fixes, last_comma = [], [], [], -1

    for ids, fragment in zip(ids_per_fragment, fragments):
        if is_break(fragment):
            close_chunk()
            continue
        weight = fragment[1]
        position = 0
        while position < len(ids):
            token = ids[position]
            if token == comma_id:
                last_comma = len(tokens)
            elif len(tokens) == length and last_comma != -1 and len(tokens) - last_comma <= COMMA_BACKTRACK:
                # Move the words after the last comma to the next chunk rather than split a phrase.
                cut = last_comma + 1
                moved_tokens, moved_weights = tokens[cut:], weights[cut:]
                moved_fixes = [(p - cut, v) for p, v in fixes if p >= cut]
                tokens, weights = tokens[:cut], weights[:cut]
                fixes = [(p, v) for p, v in fixes if p < cut]
                close_chunk()
                tokens, weights, fixes = moved_tokens, moved_weights, moved_fixes
            if len(tokens) == length:
                close_chunk()
            found = matcher.match(ids, position) if matcher is not None else None
            if found is None:
                tokens.append(token)
                weights.append(weight)
                position += 1
                continue
            name_length, embedding = found
            vectors = embeddings.vectors(embedding, encoder_index)
            if len(tokens) + len(vectors) > length:  # an embedding is never split between chunks
                close_chunk()
            fixes.append((len(tokens), vectors))
            tokens.extend([EMBEDDING_PLACEHOLDER] * len(vectors))
            weights.extend([weight] * len(vectors))
            position += name_length

    if tokens or not chunks:
        close_chunk()
    return chunks


def _has_multi_vector_tokens(tokenizer) -> bool:
    """Whether diffusers' maybe_convert_prompt could change a prompt: some added token `t` with a `t_1` beside it."""
    added = getattr(tokenizer, "added_tokens_encoder", {})
    return any(f"{token}_1" in added for token in added)


def empty_chunk(tokenizer) -> PromptChunk:
    """The chunk of an empty prompt: what shorter prompts are padded with."""
    return _wrap_chunk(tokenizer, [], [])


def weight_hidden_states(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Multiply each token's hidden state `(batch, tokens, dim)` by its weight `(batch, tokens)`."""
    return hidden * weights.to(hidden.dtype).unsqueeze(-1)


def apply_emphasis(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A1111's "Original" emphasis: weight the tokens, then restore each row's original mean.

    The mean is taken per prompt (per row), so a prompt's embedding does not depend on
    what else is in the batch; for a single prompt this is exactly A1111's result.
    """
    if bool((weights == 1.0).all()):
        return hidden
    weighted = weight_hidden_states(hidden, weights)
    original_mean = hidden.float().mean(dim=(1, 2), keepdim=True)
    weighted_mean = weighted.float().mean(dim=(1, 2), keepdim=True)
    factor = original_mean / weighted_mean
    # A weighted mean of exactly zero has no scale to restore (A1111 would give inf/NaN here).
    factor = torch.where(torch.isfinite(factor), factor, torch.ones_like(factor))
    return (weighted.float() * factor).to(hidden.dtype)


def _wrap_chunk(tokenizer, tokens: list[int], weights: list[float]) -> PromptChunk:
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    filler = chunk_length(tokenizer) - len(tokens)
    # EOS right after the prompt, then the pad token (EOS again for SD 1.x's tokenizer).
    token_ids = [bos, *tokens, eos, *([pad] * filler)]
    return PromptChunk(token_ids=token_ids, weights=[1.0, *weights, *([1.0] * (filler + 1))])


def _text_encoder_slots(pipe) -> tuple[TextEncoderLayout, list[_TextEncoderSlot]]:
    """The pipeline's text encoders, in the order and roles its model family gives them."""
    family = families.family_of(pipe)
    if family is None:
        raise ValueError(f"{type(pipe).__name__} is not a pipeline of a known model family")
    layout = family.text
    slots = []
    for tokenizer_name, encoder_name in layout.encoders:
        tokenizer = getattr(pipe, tokenizer_name, None)
        encoder = getattr(pipe, encoder_name, None)
        if tokenizer is not None and encoder is not None:
            slots.append(_TextEncoderSlot(tokenizer, encoder, layout, encoder_name in layout.pooled_names))
    return layout, slots


def _encode_texts(
    slots: list[_TextEncoderSlot],
    chunks_by_slot: list[dict[str, list[PromptChunk]]],
    texts: list[str],
    chunk_count: int,
    clip_skip: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Hidden states `(len(texts), 77 * chunk_count, dim)`, the encoders side by side, and the
    pooled embedding of each text's first chunk where an encoder gives one."""
    hidden_by_slot: list[torch.Tensor] = []
    pooled_by_slot: list[torch.Tensor] = []
    for slot, chunks_of in zip(slots, chunks_by_slot):
        padding = empty_chunk(slot.tokenizer)
        padded = [chunks_of[text] + [padding] * (chunk_count - len(chunks_of[text])) for text in texts]
        hidden_chunks = []
        for index in range(chunk_count):
            hidden, chunk_pooled = _encode_chunk(slot, [chunks[index] for chunks in padded], clip_skip)
            hidden_chunks.append(hidden)
            if index == 0 and chunk_pooled is not None:
                pooled_by_slot.append(chunk_pooled)
        hidden_by_slot.append(torch.cat(hidden_chunks, dim=1))
    # SDXL, SD3: the encoders' hidden states are concatenated per token, as diffusers does; SD3's pooled
    # embedding is its two encoders' side by side.
    pooled = torch.cat(pooled_by_slot, dim=-1) if pooled_by_slot else None
    return torch.cat(hidden_by_slot, dim=-1), pooled


def _zero_rows(values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    if not bool(rows.any()):
        return values
    return torch.where(rows.view(-1, *([1] * (values.dim() - 1))), torch.zeros_like(values), values)


def _encode_chunk(
    slot: _TextEncoderSlot, chunks: list[PromptChunk], clip_skip: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encode the same-index chunk of several prompts; returns emphasised hidden states and pooled."""
    encoder, device = slot.text_encoder, slot.device
    input_ids = torch.tensor([chunk.token_ids for chunk in chunks], device=device)
    weights = torch.tensor([chunk.weights for chunk in chunks], device=device)

    attention_mask = None
    if slot.layout.honours_attention_mask and getattr(encoder.config, "use_attention_mask", False):
        # As the tokenizer's own mask: real tokens up to and including the first EOS.
        first_eos = (input_ids == slot.tokenizer.eos_token_id).int().argmax(dim=1, keepdim=True)
        attention_mask = (torch.arange(input_ids.shape[1], device=device) <= first_eos).long()

    with _embedding_vectors(encoder, [chunk.fixes for chunk in chunks]):
        outputs = encoder(input_ids, attention_mask=attention_mask, output_hidden_states=True)
    if slot.layout.starts_at_penultimate:
        hidden = outputs.hidden_states[-(clip_skip + 1)]
    elif clip_skip == 1:
        hidden = outputs[0]
    else:
        hidden = _final_layer_norm(encoder)(outputs.hidden_states[-clip_skip])

    pooled = None
    if slot.gives_pooled:  # projected (CLIPTextModelWithProjection: SDXL, SD3) or not (CLIPTextModel: FLUX)
        pooled = outputs[0] if outputs[0].ndim == 2 else getattr(outputs, "pooler_output", None)
    return apply_emphasis(hidden, weights), pooled


@contextmanager
def _embedding_vectors(encoder: torch.nn.Module, fixes_per_row: list[list[tuple[int, torch.Tensor]]]):
    """For this call only, and only in this thread: the token embedding's output gets each row's embedding
    vectors at their positions. The cached encoder is not changed (the hook is removed after the call), and
    another thread using the same encoder meanwhile is not touched."""
    if not any(fixes_per_row):
        yield
        return
    thread = threading.get_ident()

    def replace(module, args, output: torch.Tensor) -> torch.Tensor:
        if threading.get_ident() != thread:
            return output
        output = output.clone()
        for row, fixes in enumerate(fixes_per_row):
            for position, vectors in fixes:
                end = min(position + len(vectors), output.shape[1])
                output[row, position:end] = vectors[:end - position].to(output.device, output.dtype)
        return output

    handle = encoder.get_input_embeddings().register_forward_hook(replace)
    try:
        yield
    finally:
        handle.remove()


def _final_layer_norm(encoder: torch.nn.Module) -> torch.nn.Module:
    # transformers 5 moved CLIPTextModel's layers up from `.text_model`; accept both layouts.
    text_model = getattr(encoder, "text_model", encoder)
    return text_model.final_layer_norm
