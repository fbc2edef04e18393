"""A1111 infotext: written the way A1111 writes it, read back the way A1111 reads it."""
from modules.generation.infotext import format_infotext, parse_infotext
from modules.ui.pnginfo_tab import send_values

A1111_SAMPLE = """masterpiece, (a cat:1.2)
on a sofa
Negative prompt: lowres, bad hands
Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1"""


def test_parses_an_infotext_written_by_a1111():
    parsed = parse_infotext(A1111_SAMPLE)
    assert parsed["Prompt"] == "masterpiece, (a cat:1.2)\non a sofa"
    assert parsed["Negative prompt"] == "lowres, bad hands"
    assert parsed["Steps"] == "20" and parsed["Seed"] == "1234" and parsed["CFG scale"] == "7"
    assert (parsed["Size-1"], parsed["Size-2"]) == ("512", "768")
    assert parsed["Model hash"] == "6ce0161689" and parsed["Schedule type"] == "Karras"


def test_values_with_commas_colons_or_newlines_are_quoted_and_come_back():
    text = format_infotext("a, b", "", {"Steps": 4, "Sampler": "Euler a", "Seed": 1, "Model": "odd, name: v2"})
    assert 'Model: "odd, name: v2"' in text
    assert "Negative prompt" not in text
    parsed = parse_infotext(text)
    assert parsed["Model"] == "odd, name: v2" and parsed["Prompt"] == "a, b" and parsed["Negative prompt"] == ""


def test_a_prompt_alone_is_all_prompt():
    assert parse_infotext("just a prompt")["Prompt"] == "just a prompt"


def test_send_to_txt2img_maps_fields_and_joins_the_karras_schedule():
    values = send_values(parse_infotext(A1111_SAMPLE))
    prompt, negative, sampler, steps, cfg, width, height, seed = values
    assert (sampler, steps, cfg, width, height, seed) == ("DPM++ 2M Karras", 20, 7.0, 512, 768, 1234)
    assert negative == "lowres, bad hands"
