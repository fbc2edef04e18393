"""Inpainting and outpainting: what the mask leaves alone stays exactly the same, what it covers changes; mask blur,
the four masked-content modes, only masked, invert; ordinary and inpainting (9-channel) checkpoints; pads."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest
from modules.capabilities.img2img import canvas
from modules.errors import UserError
from modules.generation.infotext import parse_infotext


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def picture(seed: int = 0, size=(64, 64)) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((size[1], size[0], 3)) * 255).astype(np.uint8))


def square_mask(box=(16, 16, 47, 47), size=(64, 64)) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask


def inside(box=(16, 16, 47, 47), size=(64, 64), grow: int = 0) -> np.ndarray:
    where = np.zeros((size[1], size[0]), dtype=bool)
    x1, y1, x2, y2 = box
    where[max(y1 - grow, 0):y2 + 1 + grow, max(x1 - grow, 0):x2 + 1 + grow] = True
    return where


@pytest.fixture
def inpaint():
    def make(**overrides) -> Img2ImgRequest:
        values = dict(prompt="a blue square", steps=4, width=64, height=64, seed=3, checkpoint="tiny-sd15",
                      init_images=[picture()], mask=square_mask(), mask_blur=0, denoising_strength=0.9,
                      save_images=False)
        values.update(overrides)
        return Img2ImgRequest(**values)
    return make


@pytest.fixture(scope="module")
def inpainting_checkpoint(backend):
    """A tiny SD 1.x inpainting checkpoint (9-channel UNet) beside the others."""
    from tests import tiny_models

    folder = backend.checkpoint_folder / "tiny-sd15-inpainting"
    if not folder.exists():
        tiny_models.make_tiny_sd15(folder, inpainting=True)
        backend.refresh_checkpoints()
    return "tiny-sd15-inpainting"


def assert_only_the_mask_changed(result: Image.Image, init: Image.Image, keep: np.ndarray) -> None:
    difference = np.abs(pixels(result) - pixels(init)).max(axis=2)
    assert (difference[keep] == 0).all(), "a pixel outside the mask changed"
    assert difference[~keep].mean() > 10, "the masked area did not change"


@pytest.mark.parametrize("fill", [0, 1, 2, 3])
def test_outside_the_mask_is_unchanged_and_inside_changes_in_every_masked_content_mode(backend, inpaint, fill):
    result = backend.run(IMG2IMG, inpaint(inpainting_fill=fill))
    assert_only_the_mask_changed(result.images[0], picture(), ~inside())
    fields = parse_infotext(result.infotexts[0])
    assert fields["Masked content"] == ("fill", "original", "latent noise", "latent nothing")[fill]
    assert fields["Mask blur"] == "0"


def test_masked_content_modes_start_from_different_pictures(backend, inpaint):
    images = [pixels(backend.run(IMG2IMG, inpaint(inpainting_fill=fill, denoising_strength=0.5)).images[0])
              for fill in range(4)]
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.abs(images[a] - images[b])[inside()].mean() > 1, (a, b)


def test_mask_blur_reaches_no_further_than_its_kernel(backend, inpaint):
    result = backend.run(IMG2IMG, inpaint(mask_blur=4))
    reach = int(2.5 * 4 + 0.5)
    assert_only_the_mask_changed(result.images[0], picture(), ~inside(grow=reach))
    blurred = np.asarray(canvas.blur(square_mask(), 4))
    assert 0 < blurred[31, 16 - 3] < 255 and blurred[31, 16 - reach - 1] == 0  # soft edge, bounded


def test_only_masked_inpaints_the_masks_box_and_pastes_it_back(backend, inpaint):
    small = (40, 40, 51, 51)
    result = backend.run(IMG2IMG, inpaint(mask=square_mask(small), inpaint_full_res=True,
                                          inpaint_full_res_padding=4))
    assert result.images[0].size == (64, 64)
    assert_only_the_mask_changed(result.images[0], picture(), ~inside(small))
    fields = parse_infotext(result.infotexts[0])
    assert (fields["Inpaint area"], fields["Masked area padding"]) == ("Only masked", "4")


def test_the_crop_region_has_the_pictures_aspect_and_stays_inside_it():
    assert canvas.crop_region(square_mask((40, 40, 51, 51)), 4, 64, 64) == (36, 36, 56, 56)  # padded
    # widened to the picture's (square) shape, and kept inside it
    assert canvas.crop_region(square_mask((56, 50, 63, 63)), 8, 64, 64) == (42, 42, 64, 64)
    wide = canvas.crop_region(square_mask((10, 10, 20, 40), size=(128, 64)), 0, 128, 64)
    assert (wide[2] - wide[0]) == 2 * (wide[3] - wide[1])


def test_invert_repaints_what_the_mask_leaves_black(backend, inpaint):
    result = backend.run(IMG2IMG, inpaint(inpainting_mask_invert=True))
    assert_only_the_mask_changed(result.images[0], picture(), inside())
    assert parse_infotext(result.infotexts[0])["Mask mode"] == "Inpaint not masked"


def test_a_transparent_mask_counts_as_unpainted(backend, inpaint):
    rgba = Image.new("RGBA", (64, 64), (255, 255, 255, 0))  # A1111's API masks may be painted on transparency
    ImageDraw.Draw(rgba).rectangle((16, 16, 47, 47), fill=(255, 255, 255, 255))
    result = backend.run(IMG2IMG, inpaint(mask=rgba))
    assert_only_the_mask_changed(result.images[0], picture(), ~inside())


def test_an_inpainting_checkpoint_inpaints_and_txt2img_refuses_it_by_name(backend, inpaint, inpainting_checkpoint):
    result = backend.run(IMG2IMG, inpaint(checkpoint=inpainting_checkpoint))
    assert_only_the_mask_changed(result.images[0], picture(), ~inside())
    with backend.manager.use(inpainting_checkpoint) as model:
        assert model.pipe.unet.config.in_channels == 9
        assert type(model.pipe).__name__ == "StableDiffusionInpaintPipeline"
    plain = backend.run(IMG2IMG, inpaint(checkpoint=inpainting_checkpoint, mask=None, denoising_strength=0.5))
    assert plain.images[0].size == (64, 64)  # img2img without a mask works on it too
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    with pytest.raises(UserError, match="tiny-sd15-inpainting.*inpainting checkpoints are for inpainting"):
        backend.txt2img(Txt2ImgRequest(prompt="x", steps=2, width=64, height=64, checkpoint=inpainting_checkpoint,
                                       save_images=False))


def test_outpainting_grows_the_canvas_and_keeps_the_picture(backend, inpaint):
    result = backend.run(IMG2IMG, inpaint(mask=None, pad_left=16, pad_bottom=24, mask_blur=0))
    image = result.images[0]
    assert image.size == (80, 88)
    kept = np.zeros((88, 80), dtype=bool)
    kept[0:64, 16:80] = True
    padded = canvas.extend(picture(), 80, 88, 16, 0)
    assert_only_the_mask_changed(image, padded, kept)
    fields = parse_infotext(result.infotexts[0])
    assert (fields["Size"], fields["Pad left"], fields["Pad bottom"]) == ("80x88", "16", "24")


def test_resize_and_fill_with_a_mask_outpaints_a_narrow_picture(backend, inpaint):
    narrow = picture(5, (32, 64))
    mask = Image.new("L", (32, 64), 0)
    result = backend.run(IMG2IMG, inpaint(init_images=[narrow], mask=mask, resize_mode=2, pad_right=16))
    assert result.images[0].size == (80, 64)
