"""Upscalers: built-in resamplers, model files loaded weights-only through spandrel, tiled inference."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modules.errors import BadModelFile, InvalidRequest, ModelNotFound
from modules import upscalers
from tests.upscaler_fixtures import upscaler_backend, upscaler_models  # noqa: F401 - fixtures


def picture(width: int = 24, height: int = 16) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def test_the_list_names_built_in_upscalers_then_model_files(upscaler_backend):  # noqa: F811
    names = upscalers.upscaler_names(upscaler_backend.manager)
    assert names[:3] == ["None", "Lanczos", "Nearest"]
    assert {"tiny-esrgan", "tiny-realesrgan", "evil-upscaler"} <= set(names)
    assert upscalers.latent_modes() == ["Latent", "Latent (antialiased)", "Latent (bicubic)",
                                        "Latent (bicubic antialiased)", "Latent (nearest)", "Latent (nearest-exact)"]
    assert upscalers.latent_mode("Latent (bicubic antialiased)") == ("bicubic", True)
    with pytest.raises(InvalidRequest, match="hr_upscaler"):
        upscalers.latent_mode("Bilinear")


@pytest.mark.parametrize("name", ["None", "Lanczos", "Nearest", None])
def test_built_in_upscalers_give_the_exact_size(name, upscaler_backend):  # noqa: F811
    image = picture()
    assert upscalers.upscale(image, name, 2.5, upscaler_backend.manager).size == (60, 40)
    assert upscalers.upscale(image, name, (50, 30), upscaler_backend.manager).size == (50, 30)


def test_nearest_repeats_pixels():
    image = picture(4, 3)
    big = upscalers.upscale(image, "Nearest", 3, manager=None)
    assert np.array_equal(np.asarray(big)[::3, ::3], np.asarray(image))


@pytest.mark.parametrize("name", ["tiny-esrgan", "tiny-realesrgan"])
def test_a_tiny_esrgan_file_loads_through_spandrel_and_upscales_4x(name, upscaler_backend):  # noqa: F811
    image = picture()
    out = upscalers.upscale(image, name, 4, upscaler_backend.manager)
    assert out.size == (96, 64)
    assert upscaler_backend.manager.device_lock.acquire(lambda: False)  # the job gave the device back
    upscaler_backend.manager.device_lock.release()
    model = upscaler_backend.manager.upscaler_model(name)
    assert model.architecture.name == "ESRGAN" and model.scale == 4
    # A scale the model does not have: one 4x run, then Lanczos down to the exact size.
    assert upscalers.upscale(image, name, (40, 30), upscaler_backend.manager, device_held=True).size == (40, 30)
    # 8x: two runs of the 4x model.
    assert upscalers.upscale(picture(6, 5), name, 8, upscaler_backend.manager).size == (48, 40)


def test_a_pickle_that_runs_code_is_refused_by_name_and_never_runs(upscaler_backend, upscaler_models):  # noqa: F811
    marker = upscaler_models.parent / "pwned"
    with pytest.raises(BadModelFile) as refused:
        upscalers.upscale(picture(), "evil-upscaler", 4, upscaler_backend.manager)
    assert "evil-upscaler.pth" in str(refused.value) and "refused" in str(refused.value)
    assert str(upscaler_models) not in str(refused.value)  # no server path
    assert not marker.exists()


def test_unknown_and_latent_names_are_refused(upscaler_backend):  # noqa: F811
    with pytest.raises(ModelNotFound, match="no-such-upscaler"):
        upscalers.upscale(picture(), "no-such-upscaler", 2, upscaler_backend.manager)
    with pytest.raises(InvalidRequest, match="latents"):
        upscalers.upscale(picture(), "Latent", 2, upscaler_backend.manager)


def test_tiled_equals_untiled_within_tolerance(upscaler_backend):  # noqa: F811
    from modules.upscalers.run_model import run_model

    model = upscaler_backend.manager.upscaler_model("tiny-esrgan")
    image = picture(40, 28)
    whole = np.asarray(run_model(model, image, tile=64), dtype=np.float32)
    tiled = np.asarray(run_model(model, image, tile=16, overlap=6), dtype=np.float32)
    assert whole.shape == tiled.shape == (112, 160, 3)
    # RRDBNet's receptive field is wider than the overlap, so tiles differ a little near seams, never a lot.
    assert np.abs(whole - tiled).mean() < 2.0
    assert np.abs(whole - tiled).max() < 48


def test_run_tiled_blends_a_pointwise_model_exactly():
    from modules.upscalers.tiled import run_tiled

    image = torch.rand(1, 3, 37, 53)
    model = lambda x: torch.nn.functional.interpolate(x * 2 - 1, scale_factor=2, mode="nearest")  # noqa: E731
    assert torch.allclose(run_tiled(model, image, 2, tile=16, overlap=4), model(image), atol=1e-5)
