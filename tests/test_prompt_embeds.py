"""A1111-style prompt embeddings on tiny, randomly initialised SD 1.x and SDXL pipelines.

Everything is built in memory (no downloads): a character-level CLIP tokenizer in which
each single-letter word is one token, and CLIP text encoders of width 32.
"""
from __future__ import annotations

import pytest
import torch
from tokenizers import pre_tokenizers

from modules.generation.prompt_embeds import (
    CHUNK_LENGTH,
    apply_emphasis,
    encode_prompts,
    tokenize_prompt,
    weight_hidden_states,
)

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

WIDTH = 32  # hidden size of the (first) text encoder
WIDTH_2 = 48  # hidden size and projection of SDXL's text_encoder_2


def make_tokenizer(pad_token: str) -> transformers.CLIPTokenizer:
    """CLIP's byte-level alphabet without merges: every character is a token, '!' is id 0."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = alphabet + [char + "</w>" for char in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    return transformers.CLIPTokenizer(vocab=vocab, merges=[], pad_token=pad_token, model_max_length=77)


def make_text_encoder(tokenizer, with_projection: bool, seed: int, width: int = WIDTH):
    config = transformers.CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=37,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=width,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model_class = transformers.CLIPTextModelWithProjection if with_projection else transformers.CLIPTextModel
    model = model_class(config).eval()
    # A trained CLIP's final layer norm has a bias; with the initial zero bias the mean that
    # emphasis restores would be ~0 and the rescaling meaningless.
    with torch.no_grad():
        getattr(model, "text_model", model).final_layer_norm.bias.normal_(0.3, 0.1)
    return model


def make_vae():
    torch.manual_seed(0)
    return diffusers.AutoencoderKL(
        block_out_channels=(4, 8),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=2,
    ).eval()


@pytest.fixture(scope="module")
def sd15():
    tokenizer = make_tokenizer(pad_token="<|endoftext|>")
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=WIDTH,
        attention_head_dim=2,
        norm_num_groups=2,
    ).eval()
    return diffusers.StableDiffusionPipeline(
        vae=make_vae(),
        text_encoder=make_text_encoder(tokenizer, with_projection=False, seed=1),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=diffusers.DDIMScheduler(steps_offset=1, clip_sample=False),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


@pytest.fixture(scope="module")
def sdxl():
    tokenizer = make_tokenizer(pad_token="<|endoftext|>")
    tokenizer_2 = make_tokenizer(pad_token="!")
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=2,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + WIDTH_2,
        cross_attention_dim=WIDTH + WIDTH_2,
        norm_num_groups=2,
    ).eval()
    return diffusers.StableDiffusionXLPipeline(
        vae=make_vae(),
        text_encoder=make_text_encoder(tokenizer, with_projection=False, seed=1),
        text_encoder_2=make_text_encoder(tokenizer_2, with_projection=True, seed=2, width=WIDTH_2),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=diffusers.EulerDiscreteScheduler(),
        force_zeros_for_empty_prompt=True,
    )


def words(count: int, letter: str = "a") -> str:
    """`count` one-token words."""
    return " ".join([letter] * count)


# --- chunking -------------------------------------------------------------------------------


@pytest.mark.parametrize("pad_token", ["<|endoftext|>", "!"])
def test_short_prompt_tokens_match_the_tokenizer_padding(pad_token: str) -> None:
    tokenizer = make_tokenizer(pad_token)
    prompt = "a cat, on a mat"
    chunks = tokenize_prompt(tokenizer, prompt)
    expected = tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids
    assert len(chunks) == 1
    assert chunks[0].token_ids == expected
    assert chunks[0].weights == [1.0] * 77


def test_pad_token_follows_the_tokenizer() -> None:
    sd1_chunk = tokenize_prompt(make_tokenizer("<|endoftext|>"), "a")[0]
    sdxl2_tokenizer = make_tokenizer("!")
    sdxl2_chunk = tokenize_prompt(sdxl2_tokenizer, "a")[0]
    eos = sdxl2_tokenizer.eos_token_id
    assert sd1_chunk.token_ids[2:] == [eos] * 75
    assert sdxl2_chunk.token_ids[2:] == [eos] + [0] * 74


def test_long_prompt_is_cut_into_chunks_of_75() -> None:
    tokenizer = make_tokenizer("<|endoftext|>")
    chunks = tokenize_prompt(tokenizer, words(200))
    assert len(chunks) == 3
    assert all(len(chunk.token_ids) == 77 == len(chunk.weights) for chunk in chunks)
    assert all(chunk.token_ids[0] == tokenizer.bos_token_id for chunk in chunks)
    prompt_tokens = [token for chunk in chunks for token in chunk.token_ids[1 : 1 + CHUNK_LENGTH]]
    assert prompt_tokens.count(tokenizer.convert_tokens_to_ids("a</w>")) == 200


def test_a_chunk_is_cut_after_a_nearby_comma() -> None:
    tokenizer = make_tokenizer("<|endoftext|>")
    a, b, comma = (tokenizer.convert_tokens_to_ids(t) for t in ("a</w>", "b</w>", ",</w>"))
    chunks = tokenize_prompt(tokenizer, words(70) + ", " + words(10, "b"))
    assert len(chunks) == 2
    assert chunks[0].token_ids[1:73] == [a] * 70 + [comma, tokenizer.eos_token_id]
    assert chunks[1].token_ids[1:12] == [b] * 10 + [tokenizer.eos_token_id]


def test_a_distant_comma_does_not_move_words() -> None:
    tokenizer = make_tokenizer("<|endoftext|>")
    chunks = tokenize_prompt(tokenizer, words(40) + ", " + words(50, "b"))
    assert chunks[0].token_ids[76] == tokenizer.eos_token_id
    assert tokenizer.eos_token_id not in chunks[0].token_ids[1:76]


def test_break_starts_a_new_chunk() -> None:
    tokenizer = make_tokenizer("<|endoftext|>")
    chunks = tokenize_prompt(tokenizer, "a BREAK (b:1.5)")
    b = tokenizer.convert_tokens_to_ids("b</w>")
    assert len(chunks) == 2
    assert chunks[1].token_ids[1] == b
    assert chunks[1].weights[1] == 1.5


def test_weights_follow_the_tokens() -> None:
    tokenizer = make_tokenizer("<|endoftext|>")
    chunk = tokenize_prompt(tokenizer, "a (b:1.5) [c]")[0]
    assert chunk.weights[:5] == pytest.approx([1.0, 1.0, 1.5, 1 / 1.1, 1.0])


# --- emphasis ----------------------------------------------------------------------------------


def test_weighting_changes_only_the_weighted_token_and_restoring_keeps_the_mean() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(2, 77, WIDTH) + 0.5
    weights = torch.ones(2, 77)
    weights[0, 3] = 1.5

    weighted = weight_hidden_states(hidden, weights)
    changed = (weighted != hidden).any(dim=-1)
    assert changed[0].nonzero().flatten().tolist() == [3]
    assert not changed[1].any()
    assert torch.allclose(weighted[0, 3], hidden[0, 3] * 1.5)

    restored = apply_emphasis(hidden, weights)
    assert torch.allclose(restored.mean(dim=(1, 2)), hidden.mean(dim=(1, 2)), atol=1e-6)
    assert torch.equal(restored[1], hidden[1])  # a row without emphasis is not rescaled


def test_a_weighted_mean_of_zero_is_not_divided_by() -> None:
    hidden = torch.tensor([[[1.0], [-2.0]]])
    restored = apply_emphasis(hidden, torch.tensor([[2.0, 1.0]]))
    assert torch.equal(restored, torch.tensor([[[2.0], [-2.0]]]))


def test_emphasis_in_a_prompt_scales_that_token_against_the_rest(sd15) -> None:
    plain = encode_prompts(sd15, ["a b c d"], [""])["prompt_embeds"]
    emphasised = encode_prompts(sd15, ["a b (c:1.5) d"], [""])["prompt_embeds"]
    ratio = emphasised / plain
    scale = ratio[0, 0, 0]  # the mean restoration factor, shared by every other value
    others = torch.ones(77, dtype=torch.bool)
    others[3] = False  # BOS, a, b, c
    assert torch.allclose(ratio[0, others], scale.expand(int(others.sum()), WIDTH), rtol=1e-4)
    assert torch.allclose(ratio[0, 3], (scale * 1.5).expand(WIDTH), rtol=1e-4)
    assert torch.allclose(emphasised.mean(), plain.mean(), atol=1e-6)


# --- whole pipelines -----------------------------------------------------------------------


def test_plain_prompt_matches_the_pipelines_own_encoding(sd15) -> None:
    ours = encode_prompts(sd15, ["a cat, on a mat"], ["blurry"])
    theirs, theirs_negative = sd15.encode_prompt(
        "a cat, on a mat", torch.device("cpu"), 1, True, negative_prompt="blurry"
    )
    assert torch.equal(ours["prompt_embeds"], theirs)
    assert torch.equal(ours["negative_prompt_embeds"], theirs_negative)


def test_clip_skip_2_is_the_penultimate_layer_with_final_layer_norm(sd15) -> None:
    # Not compared with `encode_prompt(clip_skip=1)`: with transformers 5 diffusers 0.42.1 looks
    # for `text_encoder.text_model.final_layer_norm`, which no longer exists.
    ours = encode_prompts(sd15, ["a cat"], [""], clip_skip=2)["prompt_embeds"]
    ids = sd15.tokenizer("a cat", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        penultimate = sd15.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
        expected = sd15.text_encoder.final_layer_norm(penultimate)
    assert torch.equal(ours, expected)
    assert not torch.equal(ours, encode_prompts(sd15, ["a cat"], [""])["prompt_embeds"])


def test_sdxl_clip_skip_steps_back_from_the_penultimate_layer(sdxl) -> None:
    ours = encode_prompts(sdxl, ["a cat"], ["blurry"], clip_skip=2)
    theirs = sdxl.encode_prompt("a cat", device=torch.device("cpu"), negative_prompt="blurry", clip_skip=1)
    assert torch.equal(ours["prompt_embeds"], theirs[0])
    assert torch.equal(ours["pooled_prompt_embeds"], theirs[2])


def test_sdxl_plain_prompt_matches_the_pipelines_own_encoding(sdxl) -> None:
    ours = encode_prompts(sdxl, ["a cat, on a mat"], ["blurry"])
    theirs = sdxl.encode_prompt("a cat, on a mat", device=torch.device("cpu"), negative_prompt="blurry")
    names = ["prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"]
    for name, expected in zip(names, theirs):
        assert torch.equal(ours[name], expected), name


def test_sdxl_empty_negative_is_zeros_when_the_model_asks_for_it(sdxl) -> None:
    result = encode_prompts(sdxl, ["a cat", "a dog"], ["", "blurry"])
    assert not result["negative_prompt_embeds"][0].any()
    assert not result["negative_pooled_prompt_embeds"][0].any()
    assert result["negative_prompt_embeds"][1].any()


def test_sdxl_long_prompt(sdxl) -> None:
    result = encode_prompts(sdxl, [words(200)], ["blurry"])
    assert result["prompt_embeds"].shape == (1, 231, WIDTH + WIDTH_2)
    assert result["negative_prompt_embeds"].shape == (1, 231, WIDTH + WIDTH_2)
    assert result["pooled_prompt_embeds"].shape == (1, WIDTH_2)
    # Pooled comes from the first chunk alone.
    first_chunk_only = encode_prompts(sdxl, [words(75)], ["blurry"])
    assert torch.equal(result["pooled_prompt_embeds"], first_chunk_only["pooled_prompt_embeds"])


@pytest.mark.parametrize(
    ("prompts", "negatives"),
    [
        ([words(200)], ["blurry"]),
        (["a cat"], [words(100)]),
        ([words(200), "a cat"], ["blurry", words(80)]),
    ],
)
def test_prompts_and_negatives_get_equal_shapes(sd15, prompts, negatives) -> None:
    result = encode_prompts(sd15, prompts, negatives)
    expected_tokens = 77 * max(len(tokenize_prompt(sd15.tokenizer, text)) for text in prompts + negatives)
    assert result["prompt_embeds"].shape == (len(prompts), expected_tokens, WIDTH)
    assert result["negative_prompt_embeds"].shape == result["prompt_embeds"].shape


def test_a_prompt_does_not_depend_on_its_batch(sd15) -> None:
    alone = encode_prompts(sd15, ["a (cat:1.3)"], [""])["prompt_embeds"]
    batched = encode_prompts(sd15, ["a (cat:1.3)", words(100)], ["", ""])["prompt_embeds"]
    assert torch.allclose(batched[0, :77], alone[0], atol=1e-6)


def test_long_prompt_runs_through_the_pipeline_and_leaves_it_unchanged(sd15) -> None:
    before = {name: value.clone() for name, value in sd15.text_encoder.state_dict().items()}
    config_before = dict(sd15.config)

    kwargs = encode_prompts(sd15, [words(150) + ", (b:1.3) [c]"], ["blurry, (ugly:1.2)"])
    assert kwargs["prompt_embeds"].shape == (1, 231, WIDTH)
    assert not kwargs["prompt_embeds"].requires_grad
    assert kwargs["prompt_embeds"].dtype == sd15.text_encoder.dtype

    image = sd15(**kwargs, num_inference_steps=2, height=32, width=32, output_type="np").images
    assert image.shape == (1, 32, 32, 3)
    assert torch.isfinite(torch.from_numpy(image)).all()

    after = sd15.text_encoder.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert dict(sd15.config) == config_before
    assert not sd15.text_encoder.training


def test_sdxl_long_prompt_runs_through_the_pipeline(sdxl) -> None:
    kwargs = encode_prompts(sdxl, [words(200)], [""])
    image = sdxl(**kwargs, num_inference_steps=2, height=32, width=32, output_type="np").images
    assert image.shape == (1, 32, 32, 3)


def test_mismatched_batch_sizes_are_refused(sd15) -> None:
    with pytest.raises(ValueError, match="negative prompts"):
        encode_prompts(sd15, ["a", "b"], [""])


# --- the project's shared tiny checkpoints (tests/tiny_models.py), loaded as the app loads them --


@pytest.fixture(scope="module", params=["sd2", "sdxl_refiner"])  # the shapes not built above
def shared_tiny_pipeline(request, tmp_path_factory):
    tiny_models = pytest.importorskip("tests.tiny_models")
    folder = tmp_path_factory.mktemp(request.param) / "model"
    if request.param == "sd2":
        tiny_models.make_tiny_sd2(folder)
    else:
        tiny_models.make_tiny_sdxl(folder, refiner=True)
    return diffusers.DiffusionPipeline.from_pretrained(folder)


def test_shared_tiny_models_plain_prompt_matches_and_long_prompt_fits(shared_tiny_pipeline) -> None:
    pipe = shared_tiny_pipeline
    ours = encode_prompts(pipe, ["a cat, on a mat"], ["blurry"])
    theirs = pipe.encode_prompt("a cat, on a mat", device=torch.device("cpu"), num_images_per_prompt=1,
                                do_classifier_free_guidance=True, negative_prompt="blurry")
    names = ["prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"]
    assert set(ours) == set(names[: len(theirs)])
    for name, expected in zip(names, theirs):
        assert torch.equal(ours[name], expected), name

    long = encode_prompts(pipe, [words(200)], ["blurry"])
    width = theirs[0].shape[-1]
    assert long["prompt_embeds"].shape == long["negative_prompt_embeds"].shape == (1, 231, width)


def test_chunks_follow_a_text_encoder_trained_on_shorter_sequences(tmp_path):
    """The built-in zoo model's text encoder knows 32 positions: chunks are 30 tokens + BOS + EOS."""
    from modules.generation.prompt_embeds import chunk_length, tokenize_prompt
    from tests.tiny_models import make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer(tmp_path / "tok")
    tokenizer.model_max_length = 32
    assert chunk_length(tokenizer) == 30
    chunks = tokenize_prompt(tokenizer, " ".join(["red"] * 45))
    assert [len(c.token_ids) for c in chunks] == [32, 32]


def test_prompt_chunks_are_capped_naming_the_field() -> None:
    from modules.errors import InvalidRequest
    from modules.generation.prompt_embeds import MAX_PROMPT_CHUNKS

    tokenizer = make_tokenizer("<|endoftext|>")
    assert len(tokenize_prompt(tokenizer, "a BREAK " * (MAX_PROMPT_CHUNKS - 1) + "a")) == MAX_PROMPT_CHUNKS
    with pytest.raises(InvalidRequest) as error:
        tokenize_prompt(tokenizer, "a BREAK " * 10_000, field="negative_prompt")
    assert error.value.field == "negative_prompt" and f"longer than {MAX_PROMPT_CHUNKS} chunks" in str(error.value)
