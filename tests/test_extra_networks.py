"""The Extra Networks panel's server side: cards escape hostile file names; the preview route of the running app
serves only the preview of a listed network (never a path, never a weight file) and needs the UI's login; saving
a preview is an admin's act where there are logins, and a clear refusal otherwise."""
from __future__ import annotations

import io
import re
from types import SimpleNamespace

import gradio as gr
import pytest
import requests
from PIL import Image

from modules.networks.files import EMBEDDING_SUFFIXES, LORA_SUFFIXES, NetworkFolder
from modules.networks.previews import LORA, save_preview
from modules.security.admins import Admins
from modules.ui.extra_network_cards import Card, lora_cards, render_cards
from modules.ui.extra_networks import ExtraNetworksPanel
from tests.inprocess_app import running_app

HOSTILE = '"><img src=x onerror=alert(1)>${x}{{y}}`'


def picture(colour=(0, 128, 255), size=(64, 64)) -> Image.Image:
    return Image.new("RGB", size, colour)


def test_cards_escape_hostile_names():
    card = Card(LORA, HOSTILE, HOSTILE + ".safetensors", 1.0, 5, f"<lora:{HOSTILE}:1>", "2 tokens", HOSTILE)
    page = render_cards(LORA, [card], [])
    assert "<img src=x" not in page and "onerror=alert(1)>" not in page
    assert "${" not in page and "{{" not in page and "`" not in page
    assert "&lt;lora:&quot;&gt;&lt;img src=x" in page and "name=%22%3E%3Cimg" in page


def test_lora_cards_add_a1111s_tag_with_multiplier_1(tmp_path):
    (tmp_path / "style.safetensors").write_bytes(b"x")
    (tmp_path / "style.preview.png").write_bytes(b"png")
    card, = lora_cards(NetworkFolder([tmp_path], LORA_SUFFIXES))
    assert card.prompt_text == "<lora:style:1>" and card.preview_version is not None


@pytest.fixture(scope="module")
def folders(tmp_path_factory, models_dir):
    root = tmp_path_factory.mktemp("en-models")
    models = root / "models"
    (models / "Lora").mkdir(parents=True)
    (models / "embeddings").mkdir()
    (models / "Lora" / "ink.safetensors").write_bytes(b"lora weights")
    picture((255, 0, 0)).save(models / "Lora" / "ink.preview.png")
    (models / "Lora" / "bare.safetensors").write_bytes(b"lora weights")
    (root / "secret.png").write_bytes(b"not yours")
    return SimpleNamespace(root=root, models=models, checkpoints=models_dir / "Stable-diffusion")


def flags(folders, *more):
    return ["--models-dir", str(folders.models), "--ckpt-dir", str(folders.checkpoints),
            "--outdir", str(folders.root / "outputs"), "--skip-load-model-at-start", *more]


def test_the_preview_route_serves_only_listed_previews(folders):
    with running_app(*flags(folders)) as app:
        def get(**query):
            return requests.get(f"{app.url}/extra-networks/preview", params=query, timeout=30)

        served = get(kind="lora", name="ink", v="1")
        assert served.status_code == 200 and served.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(served.content)).getpixel((0, 0)) == (255, 0, 0)
        for query in [dict(kind="lora", name="bare"),  # listed, no preview: its weights are never served
                      dict(kind="lora", name="ink.safetensors"), dict(kind="lora", name="../secret"),
                      dict(kind="lora", name=str(folders.root / "secret.png")), dict(kind="lora", name="missing"),
                      dict(kind="textual_inversion", name="ink"), dict(kind="../Lora", name="ink")]:
            answer = get(**query)
            assert answer.status_code == 404, query
            assert b"lora weights" not in answer.content and b"not yours" not in answer.content


def test_the_preview_route_needs_the_ui_login(folders):
    with running_app(*flags(folders, "--gradio-auth", "ann:preview-Pass-99")) as app:
        answer = requests.get(f"{app.url}/extra-networks/preview", params=dict(kind="lora", name="ink"), timeout=30)
        assert answer.status_code == 401


def make_panel(tmp_path, admins: Admins):
    (tmp_path / "Lora").mkdir(exist_ok=True)
    (tmp_path / "Lora" / "ink.safetensors").write_bytes(b"x")
    lora_files = NetworkFolder([tmp_path / "Lora"], LORA_SUFFIXES)
    backend = SimpleNamespace(lora_files=lora_files, embedding_files=NetworkFolder([tmp_path / "e"], EMBEDDING_SUFFIXES),
                              extensions=SimpleNamespace(admins=admins))
    return ExtraNetworksPanel(backend, "txt2img"), tmp_path / "Lora" / "ink.preview.png"


def gallery_of(tmp_path, colour) -> list:
    path = tmp_path / "out.png"
    picture(colour, (600, 300)).save(path)
    return [(str(path), "Seed 1")]


def replace(panel, gallery, user: str | None, name="ink"):
    event = gr.EventData(None, {"network": name})
    request = SimpleNamespace(username=user)
    with pytest.MonkeyPatch.context() as patch:  # the cards' HTML is not what is tested here
        patch.setattr("modules.ui.extra_networks.render", lambda backend, kind: "cards")
        return panel._replace_handler(LORA)(gallery, 0, event, request)


def test_an_admin_saves_the_picked_picture_as_the_preview(tmp_path):
    panel, preview = make_panel(tmp_path, Admins(names=frozenset({"ann"}), logins=True))
    cards, message = replace(panel, gallery_of(tmp_path, (0, 255, 0)), "ann")
    assert "Saved the picked picture as the preview of ink" in message
    with Image.open(preview) as saved:
        assert saved.size == (512, 256) and saved.getpixel((10, 10)) == (0, 255, 0)  # scaled to fit 512


@pytest.mark.parametrize("admins, user, reason", [
    (Admins(names=frozenset({"ann"}), logins=True), "bob", "'bob' is not named in --admin-users"),
    (Admins(names=frozenset(), logins=False, local_only=False), None, "has no logins"),
])
def test_others_get_a_clear_refusal_and_nothing_is_written(tmp_path, admins, user, reason):
    panel, preview = make_panel(tmp_path, admins)
    with pytest.raises(gr.Error, match=rf"Replace preview: only an admin may change the model folders.*{reason}"):
        replace(panel, gallery_of(tmp_path, (0, 255, 0)), user)
    assert not preview.exists()


def test_a_preview_for_an_unlisted_name_is_refused(tmp_path):
    panel, _ = make_panel(tmp_path, Admins(logins=False, local_only=True))
    with pytest.raises(gr.Error, match="no extra network named '../../x'"):
        replace(panel, gallery_of(tmp_path, (1, 2, 3)), None, name="../../x")
    assert not list(tmp_path.rglob("x.preview.png"))


def test_save_preview_replaces_the_old_one_whole(tmp_path):
    (tmp_path / "a.pt").write_bytes(b"x")
    folder = NetworkFolder([tmp_path], EMBEDDING_SUFFIXES)
    save_preview(folder, "a", picture((1, 1, 1)))
    save_preview(folder, "a", picture((9, 9, 9)))
    with Image.open(tmp_path / "a.preview.png") as saved:
        assert saved.getpixel((0, 0)) == (9, 9, 9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.preview.png", "a.pt"]
    assert folder.find("a").preview == tmp_path / "a.preview.png"
