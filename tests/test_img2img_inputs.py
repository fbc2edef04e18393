"""The img2img tab's pictures: the mask a brush drew, and which sub-tab's picture a job starts from."""
from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from modules.errors import UserError
from modules.ui.img2img_inputs import IMG2IMG, INPAINT, INPAINT_UPLOAD, drawn_mask, fitting_size, pictures


def stroke_layer(size=(64, 48), box=(10, 10, 30, 20), alpha=255) -> Image.Image:
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).rectangle(box, fill=(255, 255, 255, alpha))
    return layer


def test_the_mask_is_white_where_the_brush_went_and_black_elsewhere():
    mask = drawn_mask([stroke_layer()], (64, 48))
    assert mask.mode == "L" and mask.getbbox() == (10, 10, 31, 21)
    assert {value for _, value in mask.getcolors()} == {0, 255}


def test_faint_edges_and_an_empty_layer_are_no_mask():
    assert drawn_mask([stroke_layer(alpha=60)], (64, 48)) is None  # compression noise, not a stroke
    assert drawn_mask([Image.new("RGBA", (64, 48))], (64, 48)) is None
    assert drawn_mask([], (64, 48)) is None


def test_a_layer_of_another_size_is_fitted_to_the_picture():
    mask = drawn_mask([stroke_layer(size=(128, 96), box=(20, 20, 61, 41))], (64, 48))
    assert mask.size == (64, 48) and mask.getbbox() == (10, 10, 31, 21)


def test_each_sub_tab_gives_its_picture_and_mask():
    picture = Image.new("RGB", (64, 48), "red")
    assert pictures(IMG2IMG, picture, None, None, None) == (picture, None)
    image, mask = pictures(INPAINT, None, {"background": picture.convert("RGBA"), "layers": [stroke_layer()]},
                           None, None)
    assert image.mode == "RGB" and mask.getbbox() == (10, 10, 31, 21)
    uploaded = Image.new("L", (64, 48), 255)
    assert pictures(INPAINT_UPLOAD, None, None, picture, uploaded)[1] is uploaded


@pytest.mark.parametrize("mode, values, says", [
    (IMG2IMG, (None, None, None, None), "img2img: upload or paste a picture"),
    (INPAINT, (None, None, None, None), "Inpaint: upload or paste a picture"),
    (INPAINT, (None, {"background": Image.new("RGBA", (8, 8)), "layers": []}, None, None), "Inpaint: draw"),
    (INPAINT_UPLOAD, (None, None, None, None), "Inpaint upload: upload the picture"),
    (INPAINT_UPLOAD, (None, None, Image.new("RGB", (8, 8)), None), "Inpaint upload: upload a mask"),
])
def test_a_missing_picture_or_mask_is_named(mode, values, says):
    with pytest.raises(UserError, match=says):
        pictures(mode, *values)


def test_width_and_height_follow_the_picture_in_multiples_of_8():
    assert fitting_size(Image.new("RGB", (131, 65))) == (128, 64)
    assert fitting_size(Image.new("RGB", (4096, 1024))) == (2048, 512)
    assert fitting_size(None) is None
