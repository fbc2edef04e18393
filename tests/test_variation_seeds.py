"""Variation seeds as A1111 blends them (modules/rng.py ImageRNG): through the backend's txt2img and img2img,
the REST API, the infotext and PNG Info."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modules.generation.infotext import parse_infotext
from modules.generation.seeds import image_noise
from tests.inprocess_app import app_client


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def run(backend, small_request, **values):
    return backend.txt2img(small_request(**{"sampler": "Euler", "seed": 5, "save_images": False, **values}))


def test_strength_0_is_the_seed_1_is_the_variation_seed_between_is_neither(backend, small_request):
    plain = run(backend, small_request).images[0]
    other = run(backend, small_request, seed=99).images[0]
    zero = run(backend, small_request, subseed=99, subseed_strength=0)
    one = run(backend, small_request, subseed=99, subseed_strength=1)
    half = run(backend, small_request, subseed=99, subseed_strength=0.5)
    assert np.array_equal(pixels(zero.images[0]), pixels(plain))
    assert "Variation seed" not in zero.infotexts[0]
    assert np.abs(pixels(one.images[0]) - pixels(other)).max() <= 1  # a deterministic sampler: the subseed's picture
    assert np.abs(pixels(half.images[0]) - pixels(plain)).mean() > 1
    assert np.abs(pixels(half.images[0]) - pixels(other)).mean() > 1
    parsed = parse_infotext(half.infotexts[0])
    assert (parsed["Seed"], parsed["Variation seed"], parsed["Variation seed strength"]) == ("5", "99", "0.5")


def test_a_batch_keeps_the_seed_and_counts_the_variation_seed_up(backend, small_request):
    result = run(backend, small_request, subseed=99, subseed_strength=0.3, batch_size=2)
    first = result.index_of_first_image  # after the batch grid
    assert result.seeds[first:] == [5, 5] and result.subseeds[first:] == [99, 100]
    alone = run(backend, small_request, subseed=100, subseed_strength=0.3)
    assert np.abs(pixels(result.images[first + 1]) - pixels(alone.images[0])).max() <= 1  # batched arithmetic
    info = result.info()
    assert info["all_subseeds"] == [99, 100] and info["subseed_strength"] == 0.3


def test_seed_resize_draws_the_noise_at_the_old_size_and_centres_it():
    generator = torch.Generator().manual_seed(5)
    small = torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(5))
    noise = image_noise(generator, 5, (4, 8, 12), resize_from=(64, 64), scale=8)
    assert torch.equal(noise[:, :, 2:10], small)  # the 8x8 latent noise of a 64x64 picture, in the middle
    cropped = image_noise(torch.Generator().manual_seed(5), 5, (4, 4, 8), resize_from=(64, 64), scale=8)
    assert torch.equal(cropped, small[:, 2:6, :])  # a smaller picture: the middle of the old noise


def test_seed_resize_keeps_the_composition_on_the_built_in_model():
    """zoo-shapes: the shape drawn at 32x32 is where it was when the picture is widened to 48x32 with
    "Resize seed from" 32x32 (8 pixels further right: the old noise sits in the middle)."""
    from diffusers import StableDiffusionPipeline

    from modules.capabilities.txt2img.request import Txt2ImgRequest
    from modules.capabilities.txt2img.run import initial_noise
    from modules.paths import MODELS_DIR
    pipe = StableDiffusionPipeline.from_pretrained(MODELS_DIR / "Stable-diffusion" / "zoo-shapes", local_files_only=True)
    pipe.set_progress_bar_config(disable=True)

    def centre_of_shape(width: int, resize: int) -> float:
        request = Txt2ImgRequest(seed=3, seed_resize_from_w=resize, seed_resize_from_h=resize)
        noise = initial_noise([torch.Generator().manual_seed(3)], (4, 8, width // 4), request, [3], [0], scale=4)
        with torch.inference_mode():
            image = pipe("a small red circle on a white background", num_inference_steps=20, guidance_scale=5,
                         width=width, height=32, latents=noise, output_type="np").images[0]
        shape = np.abs(image - 1).sum(-1) > 0.5
        return float(np.nonzero(shape)[1].mean())
    assert abs(centre_of_shape(48, 32) - (centre_of_shape(32, 0) + 8)) <= 2


@pytest.fixture
def api_client(backend, tmp_path):
    with app_client(backend, tmp_path / "config.json") as client:
        yield client


def test_the_api_takes_a1111s_fields_and_answers_them(api_client):
    body = {"prompt": "a red circle", "steps": 2, "override_settings": {"sd_model_checkpoint": "tiny-sd15"}, "width": 64, "height": 64, "seed": 5, "subseed": 99,
            "subseed_strength": 0.25, "seed_resize_from_w": 32, "seed_resize_from_h": 32, "sampler_name": "Euler",
            "batch_size": 2}
    answer = api_client.post("/sdapi/v1/txt2img", json=body)
    assert answer.status_code == 200, answer.text
    import json
    info = json.loads(answer.json()["info"])
    assert info["all_seeds"] == [5, 5] and info["all_subseeds"] == [99, 100]
    assert (info["seed_resize_from_w"], info["seed_resize_from_h"]) == (32, 32)
    parsed = parse_infotext(info["infotexts"][-1])
    assert (parsed["Variation seed"], parsed["Variation seed strength"], parsed["Seed resize from"]) == \
        ("100", "0.25", "32x32")
    refused = api_client.post("/sdapi/v1/txt2img", json={**body, "subseed_strength": 2})
    assert refused.status_code == 422 and "subseed_strength" in refused.text


def test_img2img_blends_the_noise_it_adds(backend, small_request):
    from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest
    picture = Image.new("RGB", (64, 64), (200, 40, 40))

    def img2img(**values):
        request = Img2ImgRequest(**{"prompt": "a red circle", "steps": 4, "width": 64, "height": 64, "seed": 5,
                                    "sampler": "Euler", "checkpoint": "tiny-sd15", "save_images": False,
                                    "init_images": [picture], "denoising_strength": 0.75, **values})
        return backend.run(IMG2IMG, request)
    plain, other = img2img().images[0], img2img(seed=99).images[0]
    assert np.array_equal(pixels(img2img(subseed=99, subseed_strength=0).images[0]), pixels(plain))
    assert np.abs(pixels(img2img(subseed=99, subseed_strength=1).images[0]) - pixels(other)).max() <= 1
    half = img2img(subseed=99, subseed_strength=0.5)
    assert np.abs(pixels(half.images[0]) - pixels(plain)).mean() > 0.5
    assert "Variation seed: 99, Variation seed strength: 0.5" in half.infotexts[0]


@pytest.mark.parametrize("line,expected", [
    ("Variation seed: 99, Variation seed strength: 0.5, Seed resize from: 32x48", (99, 0.5, 32, 48)),
    ("Size: 64x64", (-1, 0.0, 0, 0)),
])
def test_png_info_sends_the_variation_fields_back(line, expected):
    from modules.ui.pnginfo_tab import variation_values
    assert variation_values(parse_infotext(f"a cat\nSteps: 20, Sampler: Euler, Seed: 5, {line}")) == list(expected)
