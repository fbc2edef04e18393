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
    with upscaler_backend.manager.upscaler_model(name) as model:
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

    image = picture(40, 28)
    with upscaler_backend.manager.upscaler_model("tiny-esrgan") as model:
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


def extras_request(**values):
    from modules.capabilities.extras import ExtrasRequest

    return ExtrasRequest(**{"images": [picture()], **values})


def test_extras_upscales_by_a_factor_with_two_upscalers_and_saves_with_infotext(upscaler_backend):  # noqa: F811
    from modules.capabilities.extras import extras

    result = upscaler_backend.run(extras, extras_request(
        images=[picture(), picture(10, 10)], names=["a.png", "b.png"], upscaler_1="tiny-esrgan",
        upscaler_2="Nearest", extras_upscaler_2_visibility=0.5, upscaling_resize=3))
    assert [i.size for i in result.images] == [(72, 48), (30, 30)]
    assert result.infotexts[0] == ("Postprocess upscale by: 3, Postprocess upscaler: tiny-esrgan, Postprocess "
                                   "upscaler 2: Nearest, Postprocess upscaler 2 visibility: 0.5, Size: 72x48")
    assert [p.parent.parent.name for p in result.paths] == ["extras-images", "extras-images"]
    assert result.paths[0].name.endswith("-a.png")
    with Image.open(result.paths[0]) as saved:
        assert saved.size == (72, 48) and saved.info["parameters"] == saved.info["postprocessing"] == result.infotexts[0]


def test_extras_scales_to_a_size_cropping_or_stretching(upscaler_backend):  # noqa: F811
    from modules.capabilities.extras import extras

    cropped = upscaler_backend.run(extras, extras_request(resize_mode=1, upscaling_resize_w=50, upscaling_resize_h=50,
                                                          upscaler_1="Lanczos", save_images=False))
    stretched = upscaler_backend.run(extras, extras_request(resize_mode=1, upscaling_resize_w=50, upscaling_resize_h=20,
                                                            upscaling_crop=False, upscaler_1="Lanczos"))
    assert cropped.images[0].size == (50, 50) and cropped.paths == []
    assert stretched.images[0].size == (50, 20)


@pytest.mark.parametrize("values, field", [
    ({"upscaler_1": "nope"}, "upscaler_1"), ({"upscaler_2": 3}, "upscaler_2"),
    ({"upscaling_resize": 0.5}, "upscaling_resize"), ({"upscaling_resize": "big"}, "upscaling_resize"),
    ({"resize_mode": 2}, "resize_mode"), ({"upscaling_resize_w": 0, "resize_mode": 1}, "upscaling_resize_w"),
    ({"extras_upscaler_2_visibility": 1.5}, "extras_upscaler_2_visibility"),
    ({"gfpgan_visibility": 0.5}, "gfpgan_visibility"), ({"codeformer_visibility": 1}, "codeformer_visibility"),
    ({"images": []}, "image"), ({"upscaling_resize": 8, "images": [picture(2048, 2048)]}, "upscaling_resize"),
])
def test_extras_refuses_bad_fields_by_name(values, field, upscaler_backend):  # noqa: F811
    from modules.capabilities.extras import extras

    with pytest.raises(InvalidRequest) as refused:
        upscaler_backend.run(extras, extras_request(**values))
    assert refused.value.field == field


def test_the_model_never_sees_more_than_a_tile_so_memory_stays_bounded():
    from modules.upscalers.tiled import run_tiled

    seen = []

    def model(x):
        seen.append(tuple(x.shape[2:]))
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")

    out = run_tiled(model, torch.rand(1, 3, 700, 1100), 4, tile=256, overlap=16)
    assert out.shape == (1, 3, 2800, 4400)
    assert max(h for h, _ in seen) <= 256 and max(w for _, w in seen) <= 256 and len(seen) == 3 * 5


def test_spandrel_leaves_no_stand_in_torchvision_for_other_libraries(upscaler_backend):  # noqa: F811
    import importlib.util
    import sys

    with upscaler_backend.manager.upscaler_model("tiny-esrgan"):
        pass
    module = sys.modules.get("torchvision")
    assert module is None or getattr(module, "__file__", None)  # the real package, or none
    assert (importlib.util.find_spec("torchvision") is None) == (module is None)


@pytest.mark.parametrize("name", ["Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                                  "Latent (nearest)", "Latent (nearest-exact)"])
def test_latent_modes_resize_latents_for_hires_fix(name):
    latents = torch.rand(2, 4, 8, 12)
    out = upscalers.upscale_latents(latents, name, (24, 16))
    assert out.shape == (2, 4, 16, 24)
    if "nearest" in name:
        assert torch.equal(out[:, :, ::2, ::2], latents)


def test_a_real_esrgan_training_checkpoint_with_params_ema_loads(tmp_path):
    from modules.models.upscaler_files import load_upscaler, read_state_dict
    from tests.upscaler_fixtures import esrgan_state_dict

    path = tmp_path / "RealESRGAN_x4plus.pth"
    weights = esrgan_state_dict(seed=2)
    torch.save({"params_ema": weights, "iter": torch.tensor(5)}, path)
    assert set(read_state_dict(path)) == set(weights)
    assert load_upscaler(path).scale == 4


def test_a_model_that_is_not_an_upscaler_is_refused_by_name(tmp_path):
    from safetensors.torch import save_file

    from modules.models.upscaler_files import load_upscaler

    path = tmp_path / "not-an-upscaler.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(BadModelFile, match="not-an-upscaler.safetensors: not an upscaler architecture"):
        load_upscaler(path)
    renamed = tmp_path / "renamed.safetensors"
    torch.save({"weight": torch.zeros(1)}, renamed)
    with pytest.raises(BadModelFile, match="renamed.safetensors: not a .safetensors file"):
        load_upscaler(renamed)


def test_a_1x_restoration_model_runs_once_then_lanczos_gives_the_size(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from modules.upscalers import _with_model
    from modules.models.upscaler_files import load_upscaler
    from tests.upscaler_fixtures import esrgan_state_dict

    path = tmp_path / "1x-restorer.safetensors"
    save_file(esrgan_state_dict(seed=3, scale=1), str(path))
    model = load_upscaler(path)
    assert model.scale == 1
    calls = []
    monkeypatch.setattr("modules.upscalers.run_model.run_model",
                        lambda m, image, check: calls.append(image.size) or image)
    assert _with_model(model, picture(), (48, 32), lambda: None).size == (48, 32)
    assert calls == [(24, 16)]
