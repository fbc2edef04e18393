"""Hires fix in txt2img: a second, img2img pass at a larger size, in the same job; A1111's infotext fields,
read back by PNG Info."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modules.errors import InvalidRequest
from modules.ui.pnginfo_tab import image_info


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def hires(small_request, **overrides):
    values = dict(enable_hr=True, hr_scale=2, hr_upscaler="Latent", denoising_strength=0.5, save_images=True)
    values.update(overrides)
    return small_request(**values)


def test_hires_fix_doubles_the_size_and_its_infotext_round_trips_through_png_info(backend, small_request):
    job = backend.new_job("txt2img")
    result = backend.txt2img(hires(small_request, hr_second_pass_steps=4), job)
    assert result.images[0].size == (128, 128)
    text = result.infotexts[0]
    assert "Size: 64x64" in text  # the first pass's size, as A1111 writes it
    assert "Denoising strength: 0.5, Hires upscale: 2, Hires steps: 4, Hires upscaler: Latent" in text
    parameters, _, parsed = image_info(str(result.paths[0]))
    assert parameters == text
    assert parsed["Hires upscale"] == "2" and parsed["Hires upscaler"] == "Latent"
    assert parsed["Hires steps"] == "4" and parsed["Denoising strength"] == "0.5"
    with Image.open(result.paths[0]) as saved:
        assert saved.size == (128, 128)
    # Progress counts both passes: 3 first-pass steps, then 4 × 0.5 hires steps.
    assert job.steps == 5 and job.progress == 1.0 and job.state == "done"
    assert result.info()["enable_hr"] is True


@pytest.mark.parametrize("upscaler", ["Latent", "Latent (bicubic antialiased)", "Latent (nearest-exact)",
                                      "Lanczos", "Nearest"])
def test_every_upscaler_kind_makes_the_larger_image(backend, small_request, upscaler):
    result = backend.txt2img(hires(small_request, hr_upscaler=upscaler, save_images=False))
    assert result.images[0].size == (128, 128)
    assert pixels(result.images[0]).std() > 0
    assert f"Hires upscaler: {upscaler}," in result.infotexts[0]


@pytest.fixture(scope="module")
def shapes_backend(tmp_path_factory):
    """The built-in zoo-shapes model: trained, so its pictures can be judged (the tiny fixtures are noise)."""
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config
    from modules.paths import MODELS_DIR

    if not (MODELS_DIR / "Stable-diffusion" / "zoo-shapes" / "model_index.json").exists():
        pytest.skip("the built-in zoo-shapes weights are not here")
    work = tmp_path_factory.mktemp("hires-shapes")
    return Backend(BackendConfig(models_dir=MODELS_DIR, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


@pytest.mark.parametrize("upscaler", ["Latent", "Lanczos"])
def test_the_hires_image_follows_the_first_pass(shapes_backend, upscaler):
    """The second pass refines the first picture at twice the size; it does not draw a new one."""
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    def make(prompt, **hr):
        return shapes_backend.txt2img(Txt2ImgRequest(prompt=prompt, steps=20, cfg_scale=5, width=32, height=32,
                                                     seed=3, checkpoint="zoo-shapes", save_images=False, **hr))

    base = make("a red circle on a white background").images[0]
    other = make("a blue square on a black background").images[0]
    fixed = make("a red circle on a white background", enable_hr=True, hr_upscaler=upscaler,
                 denoising_strength=0.5).images[0]
    assert fixed.size == (64, 64)
    shrunk = pixels(fixed.resize(base.size, Image.Resampling.LANCZOS))
    same = np.abs(shrunk - pixels(base)).mean()
    different = np.abs(pixels(other) - pixels(base)).mean()
    assert same < different / 3, (same, different)


def test_resize_to_a_size_keeps_the_aspect_ratio_when_one_side_is_given(backend, small_request):
    result = backend.txt2img(hires(small_request, width=64, height=48, hr_resize_x=96, save_images=False))
    assert result.images[0].size == (96, 72)
    assert "Hires resize: 96x72" in result.infotexts[0] and "Hires upscale:" not in result.infotexts[0]


def test_hires_prompt_and_sampler_are_written_when_they_differ(backend, small_request):
    result = backend.txt2img(hires(small_request, hr_sampler_name="Euler", hr_prompt="a blue square",
                                   save_images=False))
    assert "Hires sampler: Euler" in result.infotexts[0]
    assert 'Hires prompt: a blue square' in result.infotexts[0]


def test_without_hires_fix_nothing_changes(backend, small_request):
    plain = backend.txt2img(small_request(save_images=False))
    ignored = backend.txt2img(small_request(hr_scale=3, hr_upscaler="Nearest", save_images=False))
    assert plain.images[0].size == (64, 64) and "Hires" not in plain.infotexts[0]
    assert np.array_equal(pixels(plain.images[0]), pixels(ignored.images[0]))


def test_an_unknown_upscaler_is_refused_naming_the_field(backend, small_request):
    with pytest.raises(InvalidRequest) as refused:
        backend.txt2img(hires(small_request, hr_upscaler="Nonexistent"))
    assert refused.value.field == "hr_upscaler" and "Lanczos" in str(refused.value)


@pytest.mark.parametrize("overrides, field", [
    (dict(hr_scale=0.5), "hr_scale"),
    (dict(width=1024, height=1024, hr_scale=4), "hr_scale"),
    (dict(hr_resize_x=-8), "hr_resize_x"),
    (dict(denoising_strength=1.5), "denoising_strength"),
    (dict(hr_second_pass_steps=1000), "hr_second_pass_steps"),
    (dict(hr_sampler_name="No such sampler"), "hr_sampler_name"),
])
def test_bad_hires_values_are_refused_naming_the_field(small_request, overrides, field):
    with pytest.raises(InvalidRequest) as refused:
        hires(small_request, **overrides).validated()
    assert refused.value.field == field


def test_the_api_honours_enable_hr_and_names_a_bad_field(models_dir, tmp_path):
    """POST /sdapi/v1/txt2img with A1111's hires fields: twice the size; a bad value is a 422 naming it."""
    import base64
    import io

    import requests

    from tests.inprocess_app import running_app

    small = dict(prompt="a red circle", steps=3, width=64, height=64, seed=7, save_images=False,
                 override_settings={"sd_model_checkpoint": "tiny-sd15"})
    with running_app("--nowebui", "--models-dir", str(models_dir), "--outdir", str(tmp_path)) as app:
        answer = requests.post(f"{app.url}/sdapi/v1/txt2img", timeout=120, json={
            **small, "enable_hr": True, "hr_scale": 2, "hr_upscaler": "Lanczos", "denoising_strength": 0.5,
            "hr_second_pass_steps": 2})
        assert answer.status_code == 200, answer.text
        image = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
        assert image.size == (128, 128)
        assert "Hires upscaler: Lanczos" in image.info["parameters"]
        refused = requests.post(f"{app.url}/sdapi/v1/txt2img", timeout=120,
                                json={**small, "enable_hr": True, "hr_upscaler": "4x-Nothing"})
        assert refused.status_code == 422 and "hr_upscaler" in refused.text


def test_png_info_sends_the_hires_settings_back_to_txt2img(backend, small_request):
    """PNG Info's "Send to txt2img" turns Hires. fix on with the picture's settings (hires_controls.NAMES order)."""
    from modules.ui.pnginfo_tab import hires_values

    result = backend.txt2img(hires(small_request, hr_upscaler="Nearest", hr_second_pass_steps=6,
                                   denoising_strength=0.45, hr_scale=1.5, hr_prompt="a blue square"))
    _, _, parsed = image_info(str(result.paths[0]))
    assert hires_values(parsed) == [True, "Nearest", 6, 0.45, 1.5, 0, 0, "Use same sampler", "Use same scheduler",
                                    "a blue square", ""]
    plain = backend.txt2img(small_request(seed=5))
    assert hires_values(image_info(str(plain.paths[0]))[2])[0] is False  # a picture without hires fix turns it off


def test_the_api_refuses_hires_options_it_does_not_have_by_name():
    from types import SimpleNamespace

    from modules.api.hires_fields import hires_fields

    body = SimpleNamespace(enable_hr=True, hr_scale=2,
                           hr_resize_x=0, hr_resize_y=0, hr_upscaler="Latent", hr_second_pass_steps=0,
                           denoising_strength=None, hr_sampler_name=None, hr_prompt="", hr_negative_prompt="",
                           hr_checkpoint_name="other-model")
    with pytest.raises(InvalidRequest) as refused:
        hires_fields(body)
    assert refused.value.field == "hr_checkpoint_name" and "not supported" in str(refused.value)
    body.hr_checkpoint_name = "Use same checkpoint"
    assert hires_fields(body)["denoising_strength"] == 0.7  # null: the default


def test_an_interrupt_in_the_second_pass_keeps_the_picture(backend, small_request):
    """Interrupt during the hires pass: the job ends "interrupted" with the picture sampled so far."""
    job = backend.new_job("txt2img")
    report = job.report_step

    def interrupt_in_the_second_pass(step):
        report(step)
        if step == 4:  # the second pass's first step (3 first-pass steps)
            job.interrupt()

    job.report_step = interrupt_in_the_second_pass
    result = backend.txt2img(hires(small_request, hr_second_pass_steps=8, save_images=False), job)
    assert job.state == "interrupted"
    assert len(result.images) == 1 and result.images[0].size == (128, 128)


@pytest.mark.parametrize("checkpoint", ["tiny-sdxl", "tiny-sd15-single"])
def test_hires_fix_on_sdxl_and_single_files(backend, small_request, checkpoint):
    result = backend.txt2img(hires(small_request, checkpoint=checkpoint, width=48, height=64, save_images=False))
    assert result.images[0].size == (96, 128)
    assert f"Model: {checkpoint}," in result.infotexts[0]
