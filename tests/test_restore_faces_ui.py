"""The Restore faces checkbox of txt2img and img2img: the request's restore_faces (the API's field), recorded in
the infotext; disabled, saying where a model file goes, when models/GFPGAN holds none; PNG Info ticks it."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests.face_fixtures import gfpgan_file  # noqa: F401 - fixture

USER = SimpleNamespace(username=None, session_hash="restore-faces-ui")
BASE = ["tiny-sd15", "a red circle on a white background", "", "Euler", 3, 7.0, 64, 64, 21, 1, 1, "Automatic",
        False, -1, 0, 0, 0, []]
HIRES_OFF = [False, "Latent", 0, 0.7, 2, 0, 0, "Use same sampler", "Use same scheduler", "", ""]
REFINER_OFF = [False, None, 0.8]


@pytest.fixture(scope="module")
def face_backend(models_dir, gfpgan_file, tmp_path_factory):  # noqa: F811
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    root = tmp_path_factory.mktemp("restore-faces-models")
    (root / "Stable-diffusion").symlink_to(models_dir / "Stable-diffusion", target_is_directory=True)
    (root / "GFPGAN").symlink_to(gfpgan_file.parent, target_is_directory=True)
    work = tmp_path_factory.mktemp("restore-faces-work")
    return Backend(BackendConfig(models_dir=root, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


def tabs(backend):
    import gradio as gr

    from modules.ui.img2img_tab import Img2ImgTab
    from modules.ui.txt2img_tab import Txt2ImgTab

    with gr.Blocks():
        checkpoint = gr.Dropdown(["tiny-sd15"], value=None)
        txt2img, img2img = Txt2ImgTab(backend, checkpoint=checkpoint), Img2ImgTab(backend, checkpoint=checkpoint)
        txt2img.build()
        img2img.build()
    return txt2img, img2img


def last(answers: list) -> dict:
    return answers[-1]


def txt2img_answer(tab, restore_faces: bool) -> dict:
    return last(list(tab._generate(*BASE, *HIRES_OFF, *REFINER_OFF, 3.5, [], restore_faces, request=USER)))


def img2img_answer(tab, restore_faces: bool) -> dict:
    picture = Image.new("RGB", (64, 64), (240, 240, 240))
    own = ["img2img", picture, None, None, None, 0, 0.5, 4, 0, 1, 0, 32, 0, 0, 0, 0]
    return last(list(tab._generate(*BASE, *own, *REFINER_OFF, 3.5, [], restore_faces, request=USER)))


def test_the_checkbox_is_usable_with_a_gfpgan_file_and_its_pictures_say_so(face_backend):
    from modules.generation.infotext import parse_infotext

    txt2img, img2img = tabs(face_backend)
    for tab in (txt2img, img2img):
        assert tab.restore_faces.interactive is True and tab.restore_faces.label == "Restore faces"
    restored, plain = txt2img_answer(txt2img, True), txt2img_answer(txt2img, False)
    assert parse_infotext(restored[txt2img.infotext])["Face restoration"] == "GFPGAN"
    assert "Face restoration" not in plain[txt2img.infotext]
    # No face in a 64 px tiny-model picture: left as it is (A1111 does the same), pixel for pixel.
    first = [np.asarray(answer[txt2img.gallery][0][0].convert("RGB")) for answer in (restored, plain)]
    assert np.array_equal(*first)
    assert "Face restoration: GFPGAN" in img2img_answer(img2img, True)[img2img.infotext]
    assert "Face restoration" not in img2img_answer(img2img, False)[img2img.infotext]


def test_without_a_model_file_the_checkbox_is_disabled_and_says_where_one_goes(backend):
    import gradio as gr

    txt2img, img2img = tabs(backend)
    for tab in (txt2img, img2img):
        assert tab.restore_faces.interactive is False
        assert "models/GFPGAN" in tab.restore_faces.info and "models/Codeformer" in tab.restore_faces.info
    with pytest.raises(gr.Error) as toast:  # a value sent anyway (the Gradio API) is refused by name
        txt2img_answer(txt2img, True)
    assert "restore_faces" in toast.value.message and "GFPGAN" in toast.value.message


def test_png_info_ticks_restore_faces_for_a_picture_made_with_it(face_backend, backend):
    from modules.ui.pnginfo_tab import restore_faces_value

    parsed = {"Prompt": "a face", "Face restoration": "GFPGAN"}
    assert restore_faces_value(parsed, face_backend) is True
    assert restore_faces_value({"Prompt": "a face"}, face_backend) is False
    assert restore_faces_value(parsed, backend) is False  # no restorer here: the checkbox stays off
