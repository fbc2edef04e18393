"""Prompt styles (modules/styles.py): A1111's styles.csv read and written, `{prompt}` placeholders, styles
applied when a job runs (REST and the UI's handlers), listed by GET /sdapi/v1/prompt-styles, an unknown one
refused naming `styles`, saving only for admins."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from modules.errors import InvalidRequest, UserError
from modules.generation.infotext import parse_infotext
from modules.security.admins import Admins
from modules.styles import (MAX_STYLES, PromptStyle, StyleFile, apply_styles, extract_styles, format_styles,
                            merge_prompts, parse_styles)
from tests.inprocess_app import app_client


def test_merge_prompts_as_a1111():
    assert merge_prompts("masterpiece", "a cat") == "a cat, masterpiece"
    assert merge_prompts("oil painting of {prompt}, detailed", "a cat") == "oil painting of a cat, detailed"
    assert merge_prompts("masterpiece", "  ") == "masterpiece"
    assert merge_prompts("", "a cat") == "a cat"
    styles = [PromptStyle("a", "{prompt} in the rain", "blurry"), PromptStyle("b", "photo", "")]
    assert apply_styles("a cat", "ugly", styles) == ("a cat in the rain, photo", "ugly, blurry")


def test_styles_are_found_back_in_a_prompt():
    styles = [PromptStyle("rain", "{prompt} in the rain", "blurry"), PromptStyle("photo", "photo", "")]
    prompt, negative = apply_styles("a cat", "ugly", styles)
    assert extract_styles(prompt, negative, styles) == (["rain", "photo"], "a cat", "ugly")
    assert extract_styles("a dog", "", styles) == ([], "a dog", "")


def test_csv_round_trip_keeps_quotes_commas_and_newlines(tmp_path):
    tricky = PromptStyle('a "quoted", name', 'line one\nline two, "quotes", {prompt}', "a,b,,c")
    plain = PromptStyle("plain", "photo", "")
    styles_file = StyleFile(tmp_path / "styles.csv")
    styles_file.save(tricky)
    styles_file.save(plain)
    assert StyleFile(tmp_path / "styles.csv").styles() == [tricky, plain]
    text = (tmp_path / "styles.csv").read_text(encoding="utf-8-sig")
    assert text.splitlines()[0] == "name,prompt,negative_prompt"  # A1111's header
    styles_file.save(PromptStyle("plain", "film", "grain"))  # same name: replaced
    assert [s.prompt for s in styles_file.styles()] == [tricky.prompt, "film"]


def test_a_file_with_only_the_header_takes_new_styles(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_text("name,prompt,negative_prompt\n", encoding="utf-8")
    styles_file = StyleFile(path)
    assert styles_file.styles() == []
    styles_file.save(PromptStyle("first", "p", ""))
    assert StyleFile(path).styles() == [PromptStyle("first", "p", "")]


def test_a1111_files_read_as_a1111_reads_them():
    text = "\ufeffname,prompt,negative_prompt\n# a comment,x,y\n\nphoto, \"photo, {prompt}\",blurry\n"
    assert parse_styles(text) == [PromptStyle("photo", "photo, {prompt}", "blurry")]
    assert parse_styles("name,text\nold,an old style\n") == [PromptStyle("old", "an old style", "")]
    assert format_styles([PromptStyle("n", "p", "q")]) == "name,prompt,negative_prompt\r\nn,p,q\r\n"


@pytest.mark.parametrize("text, message", [
    ("name,prompt\n" + "a,b\n" * (MAX_STYLES + 1), "over"),
    ("name,prompt\nx,\"" + "a" * 200_000 + "\"\n", "CSV"),  # over csv's field limit
    ("name,prompt\nx," + "a" * 5000 + "\n", "over"),
    ("prompt,negative_prompt\na,b\n", "name"),
])
def test_hostile_files_are_refused_naming_the_file(text, message):
    with pytest.raises(InvalidRequest, match=message) as e:
        parse_styles(text, "styles.csv")
    assert e.value.field.startswith("styles.csv")


def test_an_unreadable_file_gives_no_styles_and_is_not_overwritten(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_text("name,prompt\nx,\"" + "a" * 200_000 + "\"\n")
    styles_file = StyleFile(path)
    assert styles_file.styles() == []
    with pytest.raises(InvalidRequest, match="not overwriting"):
        styles_file.save(PromptStyle("new", "p", ""))
    assert path.stat().st_size > 200_000


@pytest.fixture(scope="module")
def client(backend, tmp_path_factory):
    backend.styles.save(PromptStyle("rainy", "{prompt} in the rain", "sunny"))
    backend.styles.save(PromptStyle("photo", "photo", "drawing"))
    with app_client(backend, tmp_path_factory.mktemp("styles") / "config.json") as client:
        yield client


SMALL = {"prompt": "a red circle", "negative_prompt": "blurry", "steps": 2, "width": 64, "height": 64, "seed": 3,
         "sampler_name": "Euler", "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}


def test_rest_lists_and_applies_styles(client):
    listed = client.get("/sdapi/v1/prompt-styles").json()
    assert {"name": "rainy", "prompt": "{prompt} in the rain", "negative_prompt": "sunny"} in listed
    plain = client.post("/sdapi/v1/txt2img", json=SMALL).json()
    styled = client.post("/sdapi/v1/txt2img", json={**SMALL, "styles": ["rainy", "photo"]}).json()
    info = json.loads(styled["info"])
    assert info["styles"] == ["rainy", "photo"]
    written = parse_infotext(info["infotexts"][0])  # the prompt the picture was made with, as A1111 writes it
    assert written["Prompt"] == "a red circle in the rain, photo"
    assert written["Negative prompt"] == "blurry, sunny, drawing"
    assert styled["images"][0] != plain["images"][0]
    # The same picture as writing the styled prompts by hand.
    by_hand = client.post("/sdapi/v1/txt2img", json={**SMALL, "prompt": written["Prompt"],
                                                     "negative_prompt": written["Negative prompt"]}).json()
    assert by_hand["images"][0] == styled["images"][0]


@pytest.mark.parametrize("styles", [["no such style"], "rainy", [3]])
def test_rest_refuses_an_unknown_style_naming_the_field(client, styles):
    response = client.post("/sdapi/v1/txt2img", json={**SMALL, "styles": styles})
    assert response.status_code == 422 and "styles" in response.json()["detail"], response.text


def test_img2img_applies_styles_too(client):
    from tests.test_api_unsupported import init_picture

    body = {**SMALL, "init_images": [init_picture()], "denoising_strength": 0.6, "styles": ["photo"]}
    info = json.loads(client.post("/sdapi/v1/img2img", json=body).json()["info"])
    assert parse_infotext(info["infotexts"][0])["Prompt"] == "a red circle, photo"


def test_the_ui_handlers_apply_and_save_styles(backend):
    import gradio as gr

    from modules.ui.style_controls import save_style, styled_prompts
    from modules.ui.txt2img_tab import Txt2ImgTab

    backend.styles.save(PromptStyle("inked", "{prompt}, ink drawing", "colour"))
    with gr.Blocks():
        tab = Txt2ImgTab(backend, checkpoint=gr.Dropdown(["tiny-sd15"], value=None))
        tab.build()
    assert "inked" in tab.styles.choices[0] or "inked" in [c[0] for c in tab.styles.choices]
    # Generate with a style picked: applied when the job runs.
    answers = list(tab._run("tiny-sd15", "a cat", "", "Euler", 2, 7.0, 64, 64, 5, 1, 1, "Automatic", False, -1, 0, 0, 0,
                            SimpleNamespace(username=None, session_hash="styles-test"), styles=["inked"]))
    assert parse_infotext(answers[-1][tab.infotext])["Prompt"] == "a cat, ink drawing"
    # "Apply styles" moves them into the boxes and clears the pick.
    assert styled_prompts(backend, "a cat", "", ["inked"]) == ("a cat, ink drawing", "colour", [])
    with pytest.raises(InvalidRequest, match="styles"):
        styled_prompts(backend, "a cat", "", ["missing"])
    # Saving: admins only.
    admins = backend.extensions.admins
    try:
        backend.extensions.admins = Admins(names=frozenset({"root"}), logins=True)
        with pytest.raises(UserError, match="admins"):
            save_style(backend, "mine", "p", "", "alice")
        assert "mine" in save_style(backend, "mine", "p", "", "root")
    finally:
        backend.extensions.admins = admins


def test_png_info_finds_the_styles_a_picture_was_made_with():
    from modules.ui.pnginfo_tab import styles_value, with_styles

    styles = [PromptStyle("rainy", "{prompt} in the rain", "sunny"), PromptStyle("photo", "photo", "drawing")]
    parsed = parse_infotext("a cat in the rain, photo\nNegative prompt: ugly, sunny, drawing\nSteps: 2, Seed: 1, "
                            "Size: 64x64")
    restored = with_styles(parsed, styles)
    assert (restored["Prompt"], restored["Negative prompt"]) == ("a cat", "ugly")
    assert styles_value(restored) == ["rainy", "photo"]
    assert with_styles(parse_infotext("a dog\nSteps: 2, Seed: 1, Size: 64x64"), styles)["Prompt"] == "a dog"
