"""img2img, inpainting and the hires fix on Z-Image (tests/tiny_zimage.py): diffusers' Z-Image img2img and inpaint
pipelines around the cached modules (nothing copied), the pictures, seeds, masks, infotext round trips, the fields
that do not apply (named), the API route with Forge's component files and the img2img tab's handler."""
from __future__ import annotations

import base64
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest
from modules.errors import InvalidRequest
from modules.generation.infotext import parse_infotext
from tests import tiny_zimage
from tests.inprocess_app import api_client


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    models = tmp_path_factory.mktemp("zimage-img2img-models")
    folder = tiny_zimage.make_tiny_zimage(models / "Stable-diffusion" / "tiny-zimage")
    for sub in ("VAE", "Latent", "GAN", "text_encoder"):
        (models / sub).mkdir(exist_ok=True)
    tiny_zimage.make_component_files(folder, models, name="tiny-zimage-turbo")
    work = tmp_path_factory.mktemp("zimage-img2img")
    return Backend(BackendConfig(models_dir=models, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


MODULES = ["tiny-zimage-turbo-ae.safetensors", "tiny-zimage-turbo-qwen_3_4b.safetensors"]


def picture(seed: int = 0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((64, 64, 3)) * 255).astype(np.uint8))


def square_mask() -> Image.Image:
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 47), fill=255)
    return mask


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def request(**overrides) -> Img2ImgRequest:
    values = dict(prompt="a red circle", negative_prompt="blurry", steps=4, width=64, height=64, seed=3,
                  sampler="Euler", cfg_scale=1.0, checkpoint="tiny-zimage", init_images=[picture()],
                  denoising_strength=0.75, save_images=False)
    values.update(overrides)
    return Img2ImgRequest(**values)


def run(backend, **values):
    return backend.run(IMG2IMG, request(**values))


def test_img2img_makes_a_picture_that_its_seed_reproduces(backend):
    first = run(backend)
    again = run(backend)
    other = run(backend, seed=4)
    assert first.images[0].size == (64, 64)
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))
    assert not np.array_equal(pixels(first.images[0]), pixels(other.images[0]))
    weaker = run(backend, denoising_strength=0.3)
    assert not np.array_equal(pixels(first.images[0]), pixels(weaker.images[0]))
    kept = run(backend, denoising_strength=0.0)  # strength 0: the picture through the VAE, whatever the seed
    assert np.array_equal(pixels(kept.images[0]), pixels(run(backend, seed=9, denoising_strength=0.0).images[0]))
    guided = run(backend, cfg_scale=3.0)  # CFG above 1: the negative prompt counts
    assert not np.array_equal(pixels(guided.images[0]), pixels(run(backend, cfg_scale=3.0,
                                                                   negative_prompt="sharp").images[0]))


@pytest.mark.parametrize("task, mask", [("img2img", None), ("inpaint", square_mask())])
def test_the_task_pipelines_use_the_cached_modules_themselves(backend, task, mask):
    from modules.capabilities.img2img.task_pipeline import task_pipeline
    from modules.generation.samplers import build_sampler

    with backend.manager.use("tiny-zimage") as model:
        family = model.info.architecture.spec
        sampler, _ = build_sampler("Euler", "Automatic", family.scheduler_config(model.scheduler_config), 4, family)
        view = task_pipeline(model, task, sampler)
        assert type(view).__name__ == ("ZImageImg2ImgPipeline" if task == "img2img" else "ZImageInpaintPipeline")
        for name in ("transformer", "vae", "text_encoder"):
            ours, cached = getattr(view, name), getattr(model.pipe, name)
            assert ours is cached
            assert [p.data_ptr() for p in ours.parameters()] == [p.data_ptr() for p in cached.parameters()]
        assert view.scheduler is sampler and model.pipe.scheduler is not sampler
        assert model.pipe.image_processor is not view.image_processor  # the view's own, reading latents


@pytest.mark.parametrize("only_masked", [False, True])
def test_inpainting_changes_the_masked_area_only(backend, only_masked):
    init = picture()
    result = run(backend, mask=square_mask(), mask_blur=0, inpaint_full_res=only_masked,
                 inpaint_full_res_padding=8, denoising_strength=0.9).images[0]
    inside = np.zeros((64, 64), dtype=bool)
    inside[16:48, 16:48] = True
    difference = np.abs(pixels(result) - pixels(init)).max(axis=2)
    assert difference[~inside].max() == 0  # outside the mask: the original, exactly
    assert difference[inside].mean() > 5
    assert np.array_equal(pixels(result), pixels(run(backend, mask=square_mask(), mask_blur=0,
                                                     inpaint_full_res=only_masked, inpaint_full_res_padding=8,
                                                     denoising_strength=0.9).images[0]))
    blurred = run(backend, mask=square_mask(), mask_blur=4, inpaint_full_res=only_masked,
                  denoising_strength=0.9).images[0]
    reach = np.zeros((64, 64), dtype=bool)
    reach[16 - 10:48 + 10, 16 - 10:48 + 10] = True  # round(2.5 × 4) pixels of blur around the mask
    assert np.abs(pixels(blurred) - pixels(init)).max(axis=2)[~reach].max() == 0


def test_masked_content_mask_invert_and_outpainting(backend):
    init, mask = picture(), square_mask()
    made = {fill: pixels(run(backend, mask=mask, mask_blur=0, inpainting_fill=fill,
                             denoising_strength=0.8).images[0]) for fill in range(4)}
    for fill in range(1, 4):
        assert not np.array_equal(made[0], made[fill]), fill
        assert np.array_equal(made[fill][:16], pixels(init)[:16]), fill
    inverted = pixels(run(backend, mask=mask, mask_blur=0, inpainting_mask_invert=True,
                          denoising_strength=0.8).images[0])
    assert np.array_equal(inverted[16:48, 16:48], pixels(init)[16:48, 16:48])  # the square is kept now
    assert np.abs(inverted[:16] - pixels(init)[:16]).mean() > 5
    padded = run(backend, pad_left=16, pad_right=16, mask_blur=0, denoising_strength=0.8).images[0]
    assert padded.size == (96, 64)
    assert np.array_equal(pixels(padded)[:, 16:80], pixels(init))  # outpainting keeps the picture
    assert pixels(padded)[:, :16].std() > 0


def test_variation_seeds_reach_img2img_and_inpainting(backend):
    for mask in (None, square_mask()):
        plain = pixels(run(backend, mask=mask, mask_blur=0).images[0])
        varied = run(backend, mask=mask, mask_blur=0, subseed=11, subseed_strength=0.5)
        assert not np.array_equal(plain, pixels(varied.images[0]))
        assert np.array_equal(pixels(varied.images[0]),
                              pixels(run(backend, mask=mask, mask_blur=0, subseed=11, subseed_strength=0.5).images[0]))
        assert "Variation seed: 11" in varied.infotexts[0]


def test_the_hires_fix_runs_its_second_pass_through_img2img(backend):
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    def hires(**overrides):
        values = dict(prompt="a red circle", steps=2, width=64, height=64, seed=3, sampler="Euler", cfg_scale=1.0,
                      checkpoint="tiny-zimage", enable_hr=True, hr_scale=1.5, hr_upscaler="Latent",
                      save_images=False)
        return backend.txt2img(Txt2ImgRequest(**{**values, **overrides}))

    result = hires()
    assert result.images[0].size == (96, 96) and pixels(result.images[0]).std() > 0
    assert np.array_equal(pixels(result.images[0]), pixels(hires().images[0]))
    fields = parse_infotext(result.infotexts[0])
    assert fields["Hires upscale"] == "1.5" and fields["Hires upscaler"] == "Latent"
    lanczos = hires(hr_upscaler="Lanczos", denoising_strength=0.5)
    assert lanczos.images[0].size == (96, 96) and not np.array_equal(pixels(lanczos.images[0]),
                                                                     pixels(result.images[0]))
    with pytest.raises(InvalidRequest, match="side of 72 pixels; Z-Image models need multiples of 16") as refused:
        hires(hr_scale=1.125)
    assert refused.value.field == "hr_scale"


def test_infotext_round_trips_through_the_png(backend):
    from modules.ui.pnginfo_tab import send_values

    result = run(backend, save_images=True, mask=square_mask(), mask_blur=2, inpaint_full_res=True, cfg_scale=2.0,
                 denoising_strength=0.6, seed=8)
    with Image.open(result.paths[0]) as saved:
        fields = parse_infotext(saved.info["parameters"])
    assert (fields["Seed"], fields["Denoising strength"], fields["Mask blur"]) == ("8", "0.6", "2")
    assert fields["Inpaint area"] == "Only masked" and fields["Model"] == "tiny-zimage"
    assert fields["Masked content"] == "original" and "Clip skip" not in fields
    assert send_values(fields)[2:5] == ["Euler", 4, 2.0]


@pytest.mark.parametrize("field, values, words", [
    ("tiling", {"tiling": True}, "Tiling pads a UNet's convolutions"),
    ("width", {"width": 72}, "side of 72 pixels; Z-Image models need multiples of 16"),
    ("pad_left", {"pad_left": 8}, "side of 72 pixels"),
    ("refiner_checkpoint", {"refiner_checkpoint": "tiny-zimage"}, "refiner is not available for Z-Image"),
    ("sampler", {"sampler": "Euler a"}, "does not work with Z-Image models"),
    ("cfg_scale", {"cfg_scale": 0.5}, "Z-Image uses 1"),
    ("clip_skip", {"clip_skip": 2}, "Z-Image"),
    ("prompt", {"prompt": "a [red:blue:1] circle"}, "not supported on Z-Image"),
])
def test_what_does_not_apply_to_z_image_is_refused_naming_the_field(backend, field, values, words):
    with pytest.raises(InvalidRequest) as refused:
        run(backend, **values)
    assert refused.value.field == field and words in str(refused.value)


@pytest.fixture(scope="module")
def client(backend):
    with api_client(backend, backend.config.outdir.parent / "api") as client:
        yield client


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_api_inpaints_the_transformer_only_file_with_forges_modules(client):
    init = picture(2)
    body = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 3, "sampler_name": "Euler",
            "cfg_scale": 1, "seed": 5, "init_images": [_b64(init)], "mask": _b64(square_mask()), "mask_blur": 0,
            "inpaint_full_res": False, "denoising_strength": 0.9,
            "override_settings": {"sd_model_checkpoint": "tiny-zimage-turbo", "forge_additional_modules": MODULES}}
    answer = client.post("/sdapi/v1/img2img", json=body)
    assert answer.status_code == 200, answer.text
    image = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
    difference = np.abs(pixels(image) - pixels(init)).max(axis=2)
    assert difference[:16].max() == 0 and difference[16:48, 16:48].mean() > 5
    fields = parse_infotext(json.loads(answer.json()["info"])["infotexts"][0])
    assert fields["Module 2"] == MODULES[1] and fields["Denoising strength"] == "0.9"
    again = client.post("/sdapi/v1/img2img", json=body)
    assert again.json()["images"][0] == answer.json()["images"][0]  # the seed reproduces
    missing = client.post("/sdapi/v1/img2img", json={**body, "override_settings": {
        "sd_model_checkpoint": "tiny-zimage-turbo", "forge_additional_modules": MODULES[:1]}})
    assert missing.status_code >= 400 and "needs a Qwen3 text encoder" in missing.text
    tiled = client.post("/sdapi/v1/img2img", json={**body, "tiling": True})
    assert tiled.status_code == 422 and tiled.json()["field"] == "tiling"


def test_the_img2img_tab_inpaints_with_the_component_files(backend):
    import gradio as gr

    from modules.ui import checkpoint_picker
    from modules.ui.generation_tab import BASE_NAMES
    from modules.ui.img2img_inputs import INPAINT_UPLOAD
    from modules.ui.img2img_tab import FLOW_NAMES, NAMES, Img2ImgTab

    with gr.Blocks():
        picker = checkpoint_picker.build_component_picker(backend)
        tab = Img2ImgTab(backend, gr.Dropdown(backend.checkpoint_titles(), value=None),
                         checkpoint_picker.build_component_picker(backend, same_as=picker))
        tab.build()
    picked = tab.family_values("tiny-zimage", "Euler a")  # Turbo's sampler, steps and CFG; no distilled guidance
    assert picked[0].value == "Euler" and [c[0] for c in picked[0].choices] == ["Euler"]
    assert picked[1:3] == [8, 1.0] and picked[3].visible is False
    init = picture(4)
    base = dict(checkpoint="tiny-zimage-turbo", prompt="a red circle", negative_prompt="", sampler="Euler",
                steps=3, cfg_scale=1.0, width=64, height=64, seed=6, batch_count=1, batch_size=1,
                scheduler="Automatic", seed_extra=False, subseed=-1, subseed_strength=0, seed_resize_from_w=0,
                seed_resize_from_h=0, styles=[])
    own = dict(mode=INPAINT_UPLOAD, init_image=None, inpaint_sketch=None, inpaint_image=init,
               inpaint_mask=square_mask(), resize_mode=0, denoising_strength=0.9, mask_blur=0, mask_mode=0,
               inpainting_fill=1, inpaint_full_res=1, inpaint_full_res_padding=8, pad_left=0, pad_right=0,
               pad_top=0, pad_bottom=0)
    flow = dict(distilled_cfg_scale=3.5, forge_additional_modules=MODULES)
    values = ([base[n] for n in BASE_NAMES] + [own[n] for n in NAMES] + [False, None, 0.8]
              + [flow[n] for n in FLOW_NAMES])
    answers = list(tab._generate(*values, request=SimpleNamespace(username=None, session_hash="zimage-img2img")))
    text = answers[-1][tab.infotext]
    assert f"Module 2: {MODULES[1]}" in text and "Inpaint area: Only masked" in text
    assert "Distilled CFG Scale" not in text
    made = answers[-1][tab.gallery][0][0]  # (picture, caption)
    difference = np.abs(pixels(made) - pixels(init)).max(axis=2)
    assert difference[:8].max() == 0 and difference[16:48, 16:48].mean() > 5
