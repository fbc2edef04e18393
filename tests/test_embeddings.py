"""Textual-inversion embeddings: every layout A1111 reads, on the tiny SD 1.x and SDXL models (tests/tiny_models.py);
an embedding's vectors take its name's place in the prompt (and only for that encode), with emphasis; a file of
another width is skipped; a hostile .pt is refused, naming it, and nothing in it runs."""
from __future__ import annotations

import copy
import os

import pytest
import torch

from modules.errors import BadModelFile
from modules.generation.prompt_embeds import EMBEDDING_PLACEHOLDER, encode_prompts, tokenize_prompt
from modules.models.embedding_files import EmbeddingReader, read_embedding
from modules.models.families import family_of
from modules.networks.embeddings import Embeddings
from modules.networks.files import EMBEDDING_SUFFIXES, NetworkFolder
from tests import embedding_fixtures as ef
from tests import tiny_models

diffusers = pytest.importorskip("diffusers")

SD1_WIDTH, SDXL_WIDTHS = 32, (32, 64)  # the tiny models' text encoders


@pytest.fixture(scope="module")
def sd15(tmp_path_factory):
    folder = tiny_models.make_tiny_sd15(tmp_path_factory.mktemp("ti-sd15") / "model")
    return diffusers.StableDiffusionPipeline.from_pretrained(folder)


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    folder = tiny_models.make_tiny_sdxl(tmp_path_factory.mktemp("ti-sdxl") / "model")
    return diffusers.StableDiffusionXLPipeline.from_pretrained(folder)


def embeddings_in(folder) -> Embeddings:
    return Embeddings(NetworkFolder([folder], EMBEDDING_SUFFIXES))


def view(folder, pipe):
    return embeddings_in(folder).for_pipe(pipe, family_of(pipe))


# --- the files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("write, suffix", [
    (ef.a1111_pt, ".pt"), (ef.single_safetensors, ".safetensors"), (ef.diffusers_bin, ".bin"),
    (lambda path, t: ef.single_safetensors(path, t, key="<my-token>"), ".safetensors"),
])
@pytest.mark.parametrize("count", [1, 3])
def test_every_single_tensor_layout_is_read(tmp_path, write, suffix, count):
    tensor = ef.vectors(count, 768)
    data = read_embedding(write(tmp_path / f"style{suffix}", tensor))
    assert list(data.vectors) == [""] and torch.equal(data.vectors[""], tensor)
    assert (data.count, data.shape) == (count, 768)
    if write is ef.a1111_pt:
        assert (data.step, data.sd_checkpoint, data.sd_checkpoint_name) == (500, "abcdef12", "tiny-sd15")


def test_the_sdxl_layout_has_both_encoders(tmp_path):
    data = read_embedding(ef.sdxl_safetensors(tmp_path / "xl.safetensors", ef.vectors(2, 768), ef.vectors(2, 1280)))
    assert set(data.vectors) == {"clip_l", "clip_g"} and (data.count, data.shape) == (2, 2048)


def test_a_pickle_that_would_run_code_is_refused_naming_it_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = ef.malicious_pt(tmp_path / "evil.pt", marker)
    with pytest.raises(BadModelFile, match=r"^evil\.pt: refused: .*may run code"):
        read_embedding(path)
    assert not marker.exists()
    # In a folder it is listed as failed, never as an embedding, and the others still work.
    ef.single_safetensors(tmp_path / "fine.safetensors", ef.vectors(1, 32))
    found = embeddings_in(tmp_path).for_text_encoders(("",), (SD1_WIDTH,))
    assert list(found.loaded) == ["fine"] and "evil" in found.failed and "evil.pt" in found.failed["evil"]
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    (b"not a pickle at all", "refused"),
    (None, "holds 2 tensors"),
])
def test_files_that_are_no_embedding_are_refused_naming_them(tmp_path, content, message):
    path = tmp_path / "odd.pt"
    if content is None:
        torch.save({"a": torch.zeros(1, 8), "b": torch.zeros(1, 8)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(BadModelFile, match=rf"^odd\.pt: .*{message}"):
        read_embedding(path)


def test_a_pickle_renamed_to_safetensors_is_refused(tmp_path):
    path = tmp_path / "renamed.safetensors"
    ef.a1111_pt(path, ef.vectors(1, 32))
    with pytest.raises(BadModelFile, match="renamed.safetensors: refused"):
        read_embedding(path)


def test_parsed_files_are_cached_by_mtime(tmp_path):
    path = ef.single_safetensors(tmp_path / "a.safetensors", ef.vectors(1, 32, seed=1))
    reader = EmbeddingReader()
    first = reader.read(path)
    assert reader.read(path) is first
    ef.single_safetensors(path, ef.vectors(2, 32, seed=2))
    os.utime(path, ns=(1, 10**18))
    assert reader.read(path).count == 2


# --- in the prompt -----------------------------------------------------------------------------


def with_added_tokens(pipe, vectors: torch.Tensor, encoder: str = "text_encoder", tokenizer: str = "tokenizer"):
    """A copy of `pipe` whose tokenizer has tokens <e0> <e1> ... whose input embeddings are `vectors`: the
    reference an embedding must match exactly."""
    other = copy.copy(pipe)
    tok = copy.deepcopy(getattr(pipe, tokenizer))
    names = [f"<e{i}>" for i in range(len(vectors))]
    tok.add_tokens(names)
    enc = copy.deepcopy(getattr(pipe, encoder))
    enc.resize_token_embeddings(len(tok))
    with torch.no_grad():
        for name, vector in zip(names, vectors):
            enc.get_input_embeddings().weight[tok.convert_tokens_to_ids(name)] = vector
    setattr(other, tokenizer, tok)
    setattr(other, encoder, enc)
    return other, " ".join(names)


@pytest.mark.parametrize("prompt, reference", [
    ("a red mystyle circle", "a red {tokens} circle"),
    ("a red (mystyle:1.5) circle", "a red ({tokens}:1.5) circle"),  # emphasis weights its vectors too
    ("[mystyle], a cat", "[{tokens}], a cat"),
])
def test_an_embedding_is_its_vectors_in_place_of_its_name(sd15, tmp_path, prompt, reference):
    vectors = ef.vectors(2, SD1_WIDTH, seed=3)
    ef.a1111_pt(tmp_path / "mystyle.pt", vectors)
    embeddings = view(tmp_path, sd15)
    ours = encode_prompts(sd15, [prompt], ["blurry"], embeddings=embeddings)
    expected_pipe, tokens = with_added_tokens(sd15, vectors)
    expected = encode_prompts(expected_pipe, [reference.format(tokens=tokens)], ["blurry"])
    assert torch.equal(ours["prompt_embeds"], expected["prompt_embeds"])
    assert torch.equal(ours["negative_prompt_embeds"], expected["negative_prompt_embeds"])
    assert list(embeddings.used) == ["mystyle"]
    # The cached encoder and tokenizer are as before: the same prompt without embeddings is plain words again.
    plain = encode_prompts(sd15, [prompt], ["blurry"])["prompt_embeds"]
    assert not torch.equal(plain, ours["prompt_embeds"])
    assert not sd15.text_encoder.get_input_embeddings()._forward_hooks
    assert len(sd15.tokenizer) == len(sd15.text_encoder.get_input_embeddings().weight)


def test_the_conditioning_changes_from_its_tokens_on_only(sd15, tmp_path):
    ef.single_safetensors(tmp_path / "mystyle.safetensors", ef.vectors(1, SD1_WIDTH, seed=4))
    embeddings = view(tmp_path, sd15)
    with_embedding = encode_prompts(sd15, ["a red mystyle circle"], [""], embeddings=embeddings)["prompt_embeds"]
    plain = encode_prompts(sd15, ["a red mystyle circle"], [""])["prompt_embeds"]
    chunk = tokenize_prompt(sd15.tokenizer, "a red mystyle circle", embeddings=embeddings)[0]
    position = chunk.token_ids.index(EMBEDDING_PLACEHOLDER)
    assert position == 3 and [p for p, _ in chunk.fixes] == [3]  # BOS, a, red, then the embedding
    # CLIP attends to earlier tokens only: everything before the embedding is untouched, it and after differ.
    assert torch.equal(with_embedding[0, :position], plain[0, :position])
    assert not torch.allclose(with_embedding[0, position], plain[0, position])


def test_a_negative_prompt_uses_embeddings_too(sd15, tmp_path):
    ef.single_safetensors(tmp_path / "badhands.safetensors", ef.vectors(1, SD1_WIDTH, seed=5))
    embeddings = view(tmp_path, sd15)
    ours = encode_prompts(sd15, ["a cat"], ["badhands"], embeddings=embeddings)
    assert not torch.equal(ours["negative_prompt_embeds"], encode_prompts(sd15, ["a cat"], ["badhands"])[
        "negative_prompt_embeds"])
    assert list(embeddings.used) == ["badhands"]


def test_a_multi_vector_embedding_counts_toward_the_chunk_and_is_never_split(sd15, tmp_path):
    ef.a1111_pt(tmp_path / "long.pt", ef.vectors(3, SD1_WIDTH))
    embeddings = view(tmp_path, sd15)
    chunks = tokenize_prompt(sd15.tokenizer, " ".join(["red"] * 73) + " long", embeddings=embeddings)
    assert len(chunks) == 2  # 73 + 3 > 75: the embedding starts the second chunk
    assert chunks[0].fixes == [] and [p for p, _ in chunks[1].fixes] == [1]
    assert chunks[1].token_ids[1:4] == [EMBEDDING_PLACEHOLDER] * 3
    fits = tokenize_prompt(sd15.tokenizer, " ".join(["red"] * 72) + " long", embeddings=embeddings)
    assert len(fits) == 1 and [p for p, _ in fits[0].fixes] == [73]


def test_an_embedding_moved_by_the_comma_rule_keeps_its_vectors(sd15, tmp_path):
    ef.single_safetensors(tmp_path / "style.safetensors", ef.vectors(1, SD1_WIDTH))
    embeddings = view(tmp_path, sd15)
    prompt = " ".join(["red"] * 70) + ", blue style " + " ".join(["cat"] * 5)
    chunks = tokenize_prompt(sd15.tokenizer, prompt, embeddings=embeddings)
    assert len(chunks) == 2 and chunks[0].fixes == []
    (position, vectors), = chunks[1].fixes
    assert chunks[1].token_ids[position] == EMBEDDING_PLACEHOLDER and position == 2  # BOS, blue, style


def test_sdxl_embeddings_give_each_encoder_its_own_vectors(sdxl, tmp_path):
    clip_l, clip_g = ef.vectors(2, SDXL_WIDTHS[0], seed=6), ef.vectors(2, SDXL_WIDTHS[1], seed=7)
    ef.sdxl_safetensors(tmp_path / "xlstyle.safetensors", clip_l, clip_g)
    ef.single_safetensors(tmp_path / "sd1only.safetensors", ef.vectors(1, SDXL_WIDTHS[0]))
    embeddings = view(tmp_path, sdxl)
    assert list(embeddings.set.loaded) == ["xlstyle"] and list(embeddings.set.skipped) == ["sd1only"]
    ours = encode_prompts(sdxl, ["a xlstyle cat"], ["blurry"], embeddings=embeddings)
    reference, tokens = with_added_tokens(sdxl, clip_l)
    reference, _ = with_added_tokens(reference, clip_g, "text_encoder_2", "tokenizer_2")
    expected = encode_prompts(reference, [f"a {tokens} cat"], ["blurry"])
    for key in ("prompt_embeds", "pooled_prompt_embeds", "negative_prompt_embeds"):
        assert torch.equal(ours[key], expected[key]), key


def test_an_embedding_of_another_width_is_skipped_not_an_error(sd15, tmp_path):
    ef.single_safetensors(tmp_path / "wide.safetensors", ef.vectors(1, 48))
    ef.sdxl_safetensors(tmp_path / "xl.safetensors", ef.vectors(1, 32), ef.vectors(1, 64))
    embeddings = view(tmp_path, sd15)
    assert embeddings.set.loaded == {} and set(embeddings.set.skipped) == {"wide", "xl"}
    ours = encode_prompts(sd15, ["a wide cat"], [""], embeddings=embeddings)["prompt_embeds"]
    assert torch.equal(ours, encode_prompts(sd15, ["a wide cat"], [""])["prompt_embeds"])  # plain words
    assert embeddings.used == {}


@pytest.mark.parametrize("family, sidecar, widths", [
    ("sd15", False, (SD1_WIDTH,)), ("sd15", True, (SD1_WIDTH,)), ("sdxl", False, SDXL_WIDTHS),
])
def test_a_checkpoints_widths_without_loading_it(tmp_path, family, sidecar, widths):
    from modules.models.detect import detect_from_keys
    from modules.models.registry import CheckpointInfo, _tensor_shapes
    from modules.models.text_encoder_widths import checkpoint_widths

    build = tiny_models.make_tiny_sd15 if family == "sd15" else tiny_models.make_tiny_sdxl
    single = tiny_models.make_single_file(build(tmp_path / "folder"), tmp_path / "model.safetensors", sidecar=sidecar)
    info = CheckpointInfo(single, single.name, "single_file", detect_from_keys(single, _tensor_shapes(single)),
                          sidecar_config=tiny_models.sidecar_dir(single) if sidecar else None)
    assert checkpoint_widths(info) == widths


def test_the_longest_name_wins(sd15, tmp_path):
    ef.single_safetensors(tmp_path / "red.safetensors", ef.vectors(1, SD1_WIDTH))
    ef.a1111_pt(tmp_path / "redcat.pt", ef.vectors(2, SD1_WIDTH))
    embeddings = view(tmp_path, sd15)
    chunk = tokenize_prompt(sd15.tokenizer, "a redcat", embeddings=embeddings)[0]
    assert [len(v) for _, v in chunk.fixes] == [2] and list(embeddings.used) == ["redcat"]
