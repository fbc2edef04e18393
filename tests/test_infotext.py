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


def test_send_to_txt2img_maps_fields_and_the_schedule_type():
    values = send_values(parse_infotext(A1111_SAMPLE))
    prompt, negative, sampler, steps, cfg, width, height, seed, schedule = values
    # Karras is DPM++ 2M's own schedule: Automatic, as A1111 ≥ 1.9 shows it
    assert (sampler, schedule, steps, cfg, width, height, seed) == ("DPM++ 2M", "Automatic", 20, 7.0, 512, 768, 1234)
    assert negative == "lowres, bad hands"


def test_old_joined_sampler_names_and_schedule_types_come_back_apart():
    def sent(line):
        values = send_values(parse_infotext(f"a cat\nSteps: 20, {line}, CFG scale: 7, Seed: 1"))
        return values[2], values[8]
    assert sent("Sampler: Heun Karras") == ("Heun", "Karras")
    assert sent("Sampler: Euler, Schedule type: Exponential") == ("Euler", "Exponential")
    assert sent("Sampler: DPM++ 2M SDE, Schedule type: Align Your Steps") == ("DPM++ 2M SDE", "Align Your Steps")
    assert sent("Sampler: DPM2 Karras") == ("DPM2", "Automatic")
