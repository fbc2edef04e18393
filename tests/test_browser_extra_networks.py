"""A user in a real browser opens Extra networks under the prompt, searches, sorts, clicks cards (the tag appears
in the prompt box, a second click takes it out), generates with an embedding (its hash is in the infotext), and
saves the picture as the embedding's preview."""
from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from tests import embedding_fixtures as ef
from tests.app_process import AppProcess
from tests.browser import screenshot, set_slider

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("extra-networks")
    models = root / "models"
    (models / "Lora").mkdir(parents=True)
    (models / "embeddings").mkdir()
    ef.a1111_pt(models / "embeddings" / "mystyle.pt", ef.vectors(2, 32))  # the tiny SD 1.x model's width
    ef.single_safetensors(models / "embeddings" / "other-thing.safetensors", ef.vectors(1, 32))
    for index, name in enumerate(["watercolor", "pixel-art", "ink"]):
        path = models / "Lora" / f"{name}.safetensors"
        path.write_bytes(b"not read by the panel")
        os.utime(path, (1_700_000_000 + index, 1_700_000_000 + index))  # watercolor oldest, ink newest
    with AppProcess("--models-dir", str(models), "--ckpt-dir", str(models_dir / "Stable-diffusion"),
                    "--outdir", str(root / "outputs"), "--ckpt", "tiny-sd15") as app:
        app.models = models
        yield app


def names(page, kind: str) -> list[str]:
    return page.locator(f"#txt2img_{kind}_cards .zoo-en-card:visible .zoo-en-name").all_inner_texts()


def test_open_search_click_a_card_and_see_the_tag_in_the_prompt(app, page):
    page.goto(app.url)
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.fill("a red circle")
    page.locator("#txt2img_extra_networks").click()
    cards = page.locator("#txt2img_textual_inversion_cards")
    expect(cards.locator(".zoo-en-card")).to_have_count(2)
    expect(cards.locator('.zoo-en-card[data-name="mystyle"] .zoo-en-meta')).to_have_text("2 tokens")
    cards.locator(".zoo-en-search").fill("MYST")
    expect(cards.locator(".zoo-en-card:visible")).to_have_count(1)
    cards.locator(".zoo-en-card:visible").click()
    expect(prompt).to_have_value("a red circle mystyle")

    page.get_by_role("tab", name="Lora").first.click()
    loras = page.locator("#txt2img_lora_cards")
    expect(loras.locator(".zoo-en-card")).to_have_count(3)
    assert names(page, "lora") == ["ink", "pixel-art", "watercolor"]
    loras.locator(".zoo-en-sort").select_option("date")
    assert names(page, "lora") == ["watercolor", "pixel-art", "ink"]
    loras.locator(".zoo-en-direction").click()
    assert names(page, "lora") == ["ink", "pixel-art", "watercolor"]
    loras.locator(".zoo-en-search").fill("pixel")
    expect(loras.locator(".zoo-en-card:visible")).to_have_count(1)
    loras.locator(".zoo-en-card:visible").click()
    expect(prompt).to_have_value("a red circle mystyle <lora:pixel-art:1>")
    loras.locator(".zoo-en-card:visible").click()  # a second click takes the tag out again
    expect(prompt).to_have_value("a red circle mystyle")

    # What the box shows is what the server gets: the embedding is used and its hash recorded.
    set_slider(page, "txt2img_steps", 3)
    set_slider(page, "txt2img_width", 64)
    set_slider(page, "txt2img_height", 64)
    page.locator("#txt2img_seed input").fill("5")
    page.locator("#txt2img_generate").click()
    expect(page.locator("#txt2img_infotext textarea")).to_have_value(re.compile(
        r'^a red circle mystyle\n.*TI hashes: "mystyle: [0-9a-f]{12}"'), timeout=120_000)

    # The picture becomes the embedding's preview (loopback, no logins: this user owns the server).
    page.get_by_role("tab", name="Textual Inversion").first.click()
    cards.locator(".zoo-en-search").fill("")
    card = cards.locator('.zoo-en-card[data-name="mystyle"]')
    card.hover()
    card.locator(".zoo-en-replace").click()
    expect(page.locator("#txt2img_extra_networks_message")).to_contain_text("Saved the picked picture")
    expect(card.locator("img.zoo-en-preview")).to_be_visible()
    assert (app.models / "embeddings" / "mystyle.preview.png").is_file()
    loaded = card.locator("img.zoo-en-preview").evaluate(  # the picture may still be on its way
        "img => img.complete && img.naturalWidth ? img.naturalWidth"
        " : new Promise(done => img.addEventListener('load', () => done(img.naturalWidth), {once: true}))")
    assert loaded == 64
    expect(prompt).to_have_value("a red circle mystyle")  # the preview's click did not toggle the card
    page.mouse.move(0, 0)
    screenshot(page, "extra-networks")


def test_the_negative_prompt_gets_an_embedding_when_it_was_used_last(app, page):
    page.goto(app.url)
    negative = page.locator("#txt2img_neg_prompt textarea")
    negative.fill("blurry")
    negative.focus()
    page.locator("#txt2img_extra_networks").click()
    page.locator('#txt2img_textual_inversion_cards .zoo-en-card[data-name="other-thing"]').click()
    expect(negative).to_have_value("blurry other-thing")
    expect(page.locator("#txt2img_prompt textarea")).to_have_value("")


def test_img2img_has_the_panel_too(app, page):
    page.goto(app.url)
    page.get_by_role("tab", name="img2img").first.click()
    page.locator("#img2img_extra_networks").click()
    page.locator('#img2img_textual_inversion_cards .zoo-en-card[data-name="mystyle"]').click()
    expect(page.locator("#img2img_prompt textarea")).to_have_value("mystyle")
    (app.models / "Lora" / "brand-new.safetensors").write_bytes(b"x")
    page.locator("#img2img_extra_networks").get_by_role("tab", name="Lora").click()
    expect(page.locator("#img2img_lora_cards .zoo-en-card")).to_have_count(3)  # listed when the panel opened
    page.locator("#img2img_extra_refresh").click()
    expect(page.locator('#img2img_lora_cards .zoo-en-card[data-name="brand-new"]')).to_have_count(1)
