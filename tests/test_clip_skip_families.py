"""Clip skip on the transformer families: SD3 reads CLIP-L's and CLIP-G's hidden states, so clip skip changes its
pictures and its infotext says so; FLUX.1 reads only CLIP-L's pooled output (from the last layer whatever the clip
skip) and Z-Image has no CLIP. There the server's Clip skip setting gives way (the job runs, the infotext does not
claim it) and a job that asks for it is refused naming the field and the family, in Python and through the API."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modules.errors import InvalidRequest
from modules.generation.infotext import parse_infotext
from tests import tiny_flow_models, tiny_zimage
from tests.inprocess_app import api_client


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    models = tmp_path_factory.mktemp("clip-skip-models")
    sd = models / "Stable-diffusion"
    tiny_flow_models.make_tiny_sd3(sd / "tiny-sd3")
    tiny_flow_models.make_tiny_flux(sd / "tiny-flux-dev")
    tiny_zimage.make_tiny_zimage(sd / "tiny-zimage")
    for sub in ("VAE", "Latent", "GAN", "text_encoder"):
        (models / sub).mkdir(exist_ok=True)
    work = tmp_path_factory.mktemp("clip-skip")
    return Backend(BackendConfig(models_dir=models, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


def _request(checkpoint: str, **overrides):
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    values = dict(prompt="a red circle", negative_prompt="", steps=2, width=64, height=64, seed=5, sampler="Euler",
                  cfg_scale=4.0 if checkpoint == "tiny-sd3" else 1.0, checkpoint=checkpoint, save_images=False)
    return Txt2ImgRequest(**{**values, **overrides})


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture
def setting_of_2(backend):
    backend.settings.override("CLIP_stop_at_last_layers", 2)
    yield
    backend.settings.override("CLIP_stop_at_last_layers", 1)


def test_flux_reads_nothing_clip_skip_changes_and_sd3_does(backend):
    from modules.generation.prompt_embeds import encode_prompts

    def encoded(checkpoint, clip_skip):
        with backend.manager.use(checkpoint) as model:
            return encode_prompts(model.pipe, ["a red circle"], [""], clip_skip=clip_skip)

    flux = [encoded("tiny-flux-dev", skip) for skip in (1, 2)]
    assert all(torch.equal(flux[0][key], flux[1][key]) for key in flux[0] if flux[0][key] is not None)
    sd3 = [encoded("tiny-sd3", skip) for skip in (1, 2)]
    assert not torch.equal(sd3[0]["prompt_embeds"], sd3[1]["prompt_embeds"])


@pytest.mark.parametrize("checkpoint, family", [("tiny-flux-dev", "FLUX.1 dev"), ("tiny-zimage", "Z-Image")])
def test_the_setting_gives_way_where_clip_skip_changes_nothing(backend, setting_of_2, checkpoint, family):
    made = backend.txt2img(_request(checkpoint))
    assert "Clip skip" not in parse_infotext(made.infotexts[0])
    backend.settings.override("CLIP_stop_at_last_layers", 1)
    assert np.array_equal(_pixels(made.images[0]), _pixels(backend.txt2img(_request(checkpoint)).images[0]))
    with pytest.raises(InvalidRequest) as refused:  # a job that asks for it: refused, naming the family
        backend.txt2img(_request(checkpoint, clip_skip=2))
    assert refused.value.field == "clip_skip"
    assert f"is 2, but clip skip has no effect on {family} models" in str(refused.value)
    assert backend.txt2img(_request(checkpoint, clip_skip=1)).images  # 1 is what it does anyway


def test_the_setting_reaches_sd3_and_its_infotext(backend, setting_of_2):
    skipped = backend.txt2img(_request("tiny-sd3"))
    assert parse_infotext(skipped.infotexts[0])["Clip skip"] == "2"
    plain = backend.txt2img(_request("tiny-sd3", clip_skip=1))
    assert "Clip skip" not in parse_infotext(plain.infotexts[0])
    assert not np.array_equal(_pixels(skipped.images[0]), _pixels(plain.images[0]))


def test_img2img_and_the_hires_fix_follow_the_same_rule(backend, setting_of_2):
    from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest

    init = Image.new("RGB", (64, 64), (200, 40, 40))
    made = backend.run(IMG2IMG, Img2ImgRequest(**vars(_request("tiny-flux-dev")), init_images=[init]))
    assert "Clip skip" not in made.infotexts[0]
    with pytest.raises(InvalidRequest, match="FLUX.1 dev") as refused:
        backend.run(IMG2IMG, Img2ImgRequest(**vars(_request("tiny-flux-dev", clip_skip=3)), init_images=[init]))
    assert refused.value.field == "clip_skip"
    hires = backend.txt2img(_request("tiny-zimage", enable_hr=True, hr_scale=1.5))
    assert hires.images[0].size == (96, 96) and "Clip skip" not in hires.infotexts[0]


@pytest.fixture(scope="module")
def client(backend):
    with api_client(backend, backend.config.outdir.parent / "api") as client:
        yield client


def test_the_api_refuses_an_override_and_saves_the_setting(client):
    body = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "cfg_scale": 1,
            "seed": 3, "override_settings": {"sd_model_checkpoint": "tiny-flux-dev", "CLIP_stop_at_last_layers": 2}}
    refused = client.post("/sdapi/v1/txt2img", json=body)
    assert refused.status_code == 422 and refused.json()["field"] == "override_settings.CLIP_stop_at_last_layers"
    assert "no effect on FLUX.1 dev models" in refused.text
    one = client.post("/sdapi/v1/txt2img", json={**body, "override_settings": {
        "sd_model_checkpoint": "tiny-flux-dev", "CLIP_stop_at_last_layers": 1}})
    assert one.status_code == 200, one.text
    for checkpoint in ("tiny-zimage", "tiny-flux-dev"):  # the setting, for the server's other checkpoints
        saved = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": checkpoint,
                                                       "CLIP_stop_at_last_layers": 2})
        assert saved.status_code == 200, saved.text
        made = client.post("/sdapi/v1/txt2img", json={**body, "override_settings": {}})
        assert made.status_code == 200, made.text
        assert "Clip skip" not in made.json()["info"]
    client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 1})
