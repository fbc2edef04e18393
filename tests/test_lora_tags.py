"""A1111's `<lora:...>` prompt tags: what a prompt means, what is refused (naming the field and the tag)."""
from __future__ import annotations

import pytest

from modules.errors import InvalidRequest
from modules.networks.prompt_tags import MAX_LORA_TAGS, LoraTag, parse_prompt


def test_tags_are_taken_out_of_the_text_with_a1111_defaults():
    parsed = parse_prompt("a cat <lora:ink:0.8>, <lora:Film Grain> and <lora:sub/x:0.5:1.5> <lyco:old:2>")
    assert parsed.text == "a cat ,  and  "
    assert [(t.name, t.te_weight, t.unet_weight) for t in parsed.loras] == [
        ("ink", 0.8, 0.8), ("Film Grain", 1.0, 1.0), ("sub/x", 0.5, 1.5), ("old", 2.0, 2.0)]


def test_named_weights_as_a1111_reads_them():
    (tag,) = parse_prompt("<lora:ink:unet=0.25:te=0.75>").loras
    assert (tag.te_weight, tag.unet_weight) == (0.75, 0.25)
    (tag,) = parse_prompt("<lora:ink:0.5:unet=2>").loras
    assert (tag.te_weight, tag.unet_weight) == (0.5, 2.0)


def test_what_is_not_a_tag_stays_text():
    for text in ("a <b> c", "<:x>", "<lora:>", "1 < 2 and 3 > 2", "<lora:x", "a <3 heart", "<lo-ra:x>"):
        assert parse_prompt(text) == parse_prompt(text) and parse_prompt(text).text == text, text
        assert parse_prompt(text).loras == ()


def test_a_tag_runs_to_the_first_closing_bracket_as_in_a1111():
    # A1111's pattern <(\w+):([^>]+)>: the first word decides the type, its arguments run to the first ">".
    parsed = parse_prompt("x <lora:a:1> <lora:b <lora>")
    assert [t.name for t in parsed.loras] == ["a", "b <lora"]
    assert parsed.text == "x  "


@pytest.mark.parametrize("prompt, words", [
    ("<hypernet:anime:1>", ["<hypernet:anime:1>", "hypernetworks are not supported"]),
    ("<embedding:foo>", ["<embedding:foo>", "unknown extra network type 'embedding'"]),
    ("<lora:ink:strong>", ["<lora:ink:strong>", "'strong' is not a number"]),
    ("<lora:ink:nan>", ["between -20 and 20"]),
    ("<lora:ink:1:1:8>", ["dyn"]),
    ("<lora:ink:dyn=8>", ["dyn"]),
    ("<lora:ink:scale=2>", ["unknown argument 'scale'"]),
    ("<lora: :1>", ["name is missing"]),
])
def test_refusals_name_the_field_and_the_tag(prompt, words):
    with pytest.raises(InvalidRequest) as refused:
        parse_prompt(f"a cat {prompt}", "hr_prompt")
    assert refused.value.field == "hr_prompt"
    for word in words:
        assert word in refused.value.message


def test_the_number_of_loras_is_bounded():
    parse_prompt("".join(f"<lora:n{i}:1>" for i in range(MAX_LORA_TAGS)))
    with pytest.raises(InvalidRequest, match=f"at most {MAX_LORA_TAGS}"):
        parse_prompt("".join(f"<lora:n{i}:1>" for i in range(MAX_LORA_TAGS + 1)))


def test_hostile_prompts_parse_in_one_pass():
    # Unclosed tags and long words: what makes a backtracking pattern quadratic. Each is scanned once.
    for text in ("<a:" * 6000, "<lora:" * 3000, "<" + "a" * 19_000, "<lora" * 4000, "<lora:b" + ">" * 19_000):
        parsed = parse_prompt(text)
        assert len(parsed.text) <= len(text)
    assert parse_prompt("<lora:b" + ">" * 10).text == ">" * 9


def test_a_tag_is_a_value():
    assert parse_prompt("<lora:x:0.5>").loras == (LoraTag("x", 0.5, 0.5, "<lora:x:0.5>"),)
