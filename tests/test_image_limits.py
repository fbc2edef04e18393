"""Every place that opens a user's image refuses a decompression bomb from its header, naming the field."""
from __future__ import annotations

import io
import warnings

import pytest
from PIL import Image

from modules.errors import InvalidRequest
from modules.image_limits import MAX_IMAGE_PIXELS
from tests.image_bombs import bomb_png


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    path.write_bytes(bomb_png(13000, 13000))
    assert path.stat().st_size < 100_000  # small on disk, 169 megapixels
    return path


def test_png_info_tab_refuses_a_bomb(bomb):
    from modules.ui.pnginfo_tab import read_image_info

    parameters, table, parsed = read_image_info(str(bomb))
    assert parameters == "" and parsed == {}
    assert "image: the image is" in table and f"over the limit of {MAX_IMAGE_PIXELS} pixels" in table


def test_png_info_tab_still_reads_a_normal_png(tmp_path):
    from modules.images import png_info
    from modules.ui.pnginfo_tab import read_image_info

    path = tmp_path / "ok.png"
    Image.new("RGB", (64, 64)).save(path, pnginfo=png_info("a cat\nSteps: 3, Sampler: Euler, Seed: 1, Size: 64x64"))
    parameters, _table, parsed = read_image_info(str(path))
    assert parameters.startswith("a cat") and parsed["Steps"] == "3"


def test_latent_encode_refuses_a_bomb(bomb):
    from modules.capabilities.latent.request import read_image

    with pytest.raises(InvalidRequest) as error:
        read_image(str(bomb), "image")
    assert error.value.field == "image" and "over the limit" in str(error.value)


def test_latent_import_refuses_a_bomb(bomb):
    from modules.capabilities.latent.state import load_file

    with pytest.raises(InvalidRequest) as error:
        load_file(bomb)
    assert error.value.field == "file" and "over the limit" in str(error.value)


def test_gan_import_refuses_a_bomb(bomb):
    from modules.capabilities.gan.state import read_states

    with pytest.raises(InvalidRequest) as error:
        read_states(bomb)
    assert error.value.field == "file" and "over the limit" in str(error.value)


def test_api_base64_image_refuses_a_bomb():
    import base64

    from modules.api.images import decode_image

    with pytest.raises(InvalidRequest) as error:
        decode_image(base64.b64encode(bomb_png(13000, 13000)).decode(), "image")
    assert error.value.field == "image" and f"over the limit of {MAX_IMAGE_PIXELS} pixels" in str(error.value)


def test_installed_limit_makes_pillow_refuse_bombs_everywhere():
    from modules import image_limits

    saved = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        image_limits.install()
        try:
            with pytest.raises((Image.DecompressionBombError, Image.DecompressionBombWarning)):
                Image.open(io.BytesIO(bomb_png(6000, 6000)))  # 36 megapixels: Pillow alone only warns at 89
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def test_direction_images_are_summed_from_their_headers_before_decoding(tmp_path, bomb):
    from modules.capabilities.latent.sd_request import SdVaeDirectionsRequest

    with pytest.raises(InvalidRequest) as error:
        SdVaeDirectionsRequest("vae", [str(bomb)] * 3).validated(4)
    assert error.value.field == "images[0]" and "over the limit" in str(error.value)
    paths = []
    for index in range(3):
        paths.append(tmp_path / f"{index}.png")
        paths[-1].write_bytes(bomb_png(4000, 4000))  # each allowed alone, not all three at once
    with pytest.raises(InvalidRequest) as error:
        SdVaeDirectionsRequest("vae", [str(p) for p in paths]).validated(4)
    assert str(error.value) == (f"images: the images have 48000000 pixels together, over the limit of "
                                f"{MAX_IMAGE_PIXELS}: give fewer or smaller ones")
