"""Hires fix's "Hires schedule type" (A1111's `hr_scheduler`): the second pass samples with its own schedule;
through the request, the API, the txt2img tab's handler and PNG Info."""
from __future__ import annotations

import base64
import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from modules.errors import InvalidRequest
from modules.ui.pnginfo_tab import hires_values, image_info
from tests.inprocess_app import app_client

HIRES = dict(enable_hr=True, hr_scale=2, hr_upscaler="Latent", denoising_strength=0.6, hr_second_pass_steps=5,
             sampler="Euler", save_images=False)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def test_the_second_pass_samples_with_the_hires_schedule_type(backend, small_request):
    same = backend.txt2img(small_request(**HIRES))
    karras = backend.txt2img(small_request(**HIRES, hr_scheduler="Karras"))
    # The first pass is the same job: only the second pass's schedule can make the pictures differ.
    assert karras.images[0].size == same.images[0].size == (128, 128)
    assert np.abs(pixels(karras.images[0]) - pixels(same.images[0])).mean() > 1
    assert "Hires schedule type: Karras" in karras.infotexts[0]
    assert "Hires schedule type" not in same.infotexts[0]
    assert "Schedule type: Karras" not in karras.infotexts[0].replace("Hires schedule type", "")
    # The first pass with Karras and "Use same scheduler": the second pass takes Karras too, pixel for pixel
    # the picture of a Karras first pass with hr_scheduler Karras (the infotext then says it once).
    both = backend.txt2img(small_request(**HIRES, scheduler="Karras"))
    named = backend.txt2img(small_request(**HIRES, scheduler="Karras", hr_scheduler="Karras"))
    assert np.array_equal(pixels(both.images[0]), pixels(named.images[0]))
    assert "Hires schedule type" not in named.infotexts[0]


def test_the_second_pass_is_given_the_hires_schedule_type(backend, small_request, monkeypatch):
    from modules.capabilities.txt2img import hires_pass

    seen: dict[str, list] = {}
    real = hires_pass.denoise

    def recording(second, *args, **kwargs):
        seen.setdefault("schedules", []).append(second.scheduler)
        return real(second, *args, **kwargs)

    monkeypatch.setattr(hires_pass, "denoise", recording)
    backend.txt2img(small_request(**HIRES, hr_scheduler="Exponential"))
    backend.txt2img(small_request(**HIRES, scheduler="Karras"))
    backend.txt2img(small_request(**HIRES, scheduler="Karras", hr_sampler_name="Euler a"))
    # Euler a does not take Karras: "Use same scheduler" falls back to its Automatic, as A1111's choice list does.
    assert seen["schedules"] == ["Exponential", "Karras", "Automatic"]


@pytest.mark.parametrize("overrides, message", [
    (dict(hr_scheduler="Nonsense"), "unknown schedule type"),
    (dict(hr_sampler_name="Euler a", hr_scheduler="Karras"), "Euler a does not take"),
    (dict(hr_scheduler=5), "unknown schedule type"),
])
def test_a_bad_hires_schedule_type_is_refused_naming_the_field(small_request, overrides, message):
    with pytest.raises(InvalidRequest) as refused:
        small_request(**HIRES, **overrides).validated()
    assert refused.value.field == "hr_scheduler" and message in str(refused.value)


def test_a_joined_hires_sampler_name_gives_its_schedule(small_request):
    """A1111 < 1.9 clients write "DPM++ 2M Karras" as the hires sampler: the schedule comes with it."""
    checked = small_request(**HIRES, hr_sampler_name="Euler Karras").validated()
    assert (checked.hr_sampler_name, checked.hr_scheduler) == ("Euler", "Karras")
    assert small_request(**HIRES, hr_scheduler="Use same scheduler").validated().hr_scheduler == ""


def test_png_info_reads_the_hires_schedule_type_back(backend, small_request):
    result = backend.txt2img(small_request(**{**HIRES, "save_images": True}, hr_scheduler="Karras", seed=31))
    parameters, _, parsed = image_info(str(result.paths[0]))
    assert parsed["Hires schedule type"] == "Karras"
    values = hires_values(parsed)
    assert values[7:9] == ["Use same sampler", "Karras"]
    plain = backend.txt2img(small_request(**{**HIRES, "save_images": True}, seed=32))
    assert hires_values(image_info(str(plain.paths[0]))[2])[8] == "Use same scheduler"


# Through the API app and the txt2img tab's handler -------------------------------------------------------------

@pytest.fixture(scope="module")
def client(backend, tmp_path_factory):
    with app_client(backend, tmp_path_factory.mktemp("hires-schedule-api") / "config.json") as client:
        yield client


BODY = {"prompt": "a red circle", "steps": 3, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler",
        "enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent", "denoising_strength": 0.6,
        "hr_second_pass_steps": 5, "override_settings": {"sd_model_checkpoint": "tiny-sd15"}}


def picture_of(answer) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))


def test_the_api_takes_hr_scheduler(client):
    same = client.post("/sdapi/v1/txt2img", json={**BODY, "hr_scheduler": "Use same scheduler"})
    karras = client.post("/sdapi/v1/txt2img", json={**BODY, "hr_scheduler": "Karras"})
    assert same.status_code == karras.status_code == 200, karras.text
    assert "Hires schedule type: Karras" in picture_of(karras).info["parameters"]
    assert np.abs(pixels(picture_of(karras)) - pixels(picture_of(same))).mean() > 1
    refused = client.post("/sdapi/v1/txt2img", json={**BODY, "hr_sampler_name": "Euler a", "hr_scheduler": "Karras"})
    assert refused.status_code == 422 and refused.json()["detail"].startswith("hr_scheduler:")


def test_the_txt2img_tab_handler_passes_the_hires_schedule_type(backend):
    import gradio as gr

    from modules.ui.txt2img_tab import Txt2ImgTab

    with gr.Blocks():
        tab = Txt2ImgTab(backend, checkpoint=gr.Dropdown(["tiny-sd15"], value=None))
        tab.build()

    def infotext(hires_schedule):
        hires = [True, "Latent", 5, 0.6, 2, 0, 0, "Use same sampler", hires_schedule, "", ""]
        answers = list(tab._generate("tiny-sd15", "a red circle", "", "Euler", 3, 7.0, 64, 64, 5, 1, 1, "Automatic",
                                     False, -1, 0, 0, 0, [], *hires, False, None, 0.8,
                                     request=SimpleNamespace(username=None, session_hash="hires-schedule")))
        return answers[-1][tab.infotext]

    assert "Hires schedule type: Exponential" in infotext("Exponential")
    assert "Hires schedule type" not in infotext("Use same scheduler")
    with pytest.raises(gr.Error) as toast:
        infotext("Nonsense")
    assert "hr_scheduler" in toast.value.message
