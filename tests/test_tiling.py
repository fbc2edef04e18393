"""A1111's Tiling on the built-in zoo-shapes model: the picture wraps around (its left edge continues its right
edge, its top its bottom) where the same seed without tiling shows a seam; the cached model is as before after
the job; txt2img, img2img and the API honour it and the infotext says `Tiling: True`."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest
from modules.capabilities.txt2img import Txt2ImgRequest
from modules.generation.infotext import parse_infotext

PROMPT = "a blue square on a black background"


@pytest.fixture(scope="module")
def shapes_backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config
    from modules.paths import MODELS_DIR

    if not (MODELS_DIR / "Stable-diffusion" / "zoo-shapes" / "model_index.json").exists():
        pytest.skip("the built-in zoo-shapes weights are not here")
    work = tmp_path_factory.mktemp("tiling-shapes")
    return Backend(BackendConfig(models_dir=MODELS_DIR, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


def seams(image) -> tuple[float, float, float, float]:
    """(the wrap-around seam across, the 90th percentile of the other column seams, the same down)."""
    a = np.asarray(image).astype(float)
    columns = np.abs(a - np.roll(a, 1, axis=1)).mean(axis=(0, 2))  # columns[0]: right edge -> left edge
    rows = np.abs(a - np.roll(a, 1, axis=0)).mean(axis=(1, 2))
    return columns[0], np.percentile(columns[1:], 90), rows[0], np.percentile(rows[1:], 90)


def make(backend, seed: int, tiling: bool, **fields):
    return backend.txt2img(Txt2ImgRequest(prompt=PROMPT, steps=10, width=64, height=64, seed=seed, sampler="Euler",
                                          checkpoint="zoo-shapes", save_images=False, tiling=tiling, **fields))


@pytest.mark.parametrize("seed", [0, 7])  # seeds whose plain picture has a shape cut by its left/right edge
def test_a_tiled_picture_wraps_around_where_the_plain_one_has_a_seam(shapes_backend, seed):
    plain = make(shapes_backend, seed, False)
    tiled = make(shapes_backend, seed, True)
    across, others, down, others_down = seams(plain.images[0])
    assert across > others  # the plain picture: its edges do not meet
    t_across, t_others, t_down, t_others_down = seams(tiled.images[0])
    assert t_across <= t_others and t_down <= t_others_down  # no seam stands out: left continues right
    assert t_across < across / 3
    assert parse_infotext(tiled.infotexts[0])["Tiling"] == "True"
    assert "Tiling" not in parse_infotext(plain.infotexts[0])


def test_the_cached_model_is_as_before_after_a_tiled_job(shapes_backend):
    before = make(shapes_backend, 2, False).images[0]
    make(shapes_backend, 2, True)
    model = shapes_backend.manager.load("zoo-shapes")
    convs = [m for part in (model.pipe.unet, model.pipe.vae) for m in part.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.padding_mode == "zeros" for c in convs)
    assert np.array_equal(np.asarray(before), np.asarray(make(shapes_backend, 2, False).images[0]))


def test_img2img_tiles_too(shapes_backend):
    start = make(shapes_backend, 2, False).images[0]  # a picture with a seam at its edges
    request = dict(prompt=PROMPT, steps=10, width=64, height=64, seed=5, sampler="Euler", checkpoint="zoo-shapes",
                   save_images=False, init_images=[start], denoising_strength=0.9)
    plain = shapes_backend.run(IMG2IMG, Img2ImgRequest(**request))
    tiled = shapes_backend.run(IMG2IMG, Img2ImgRequest(**request, tiling=True))
    assert seams(tiled.images[0])[0] < seams(plain.images[0])[0]
    assert parse_infotext(tiled.infotexts[0])["Tiling"] == "True"
