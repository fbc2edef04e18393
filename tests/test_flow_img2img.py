"""img2img, inpainting and prompt editing on SD 3/3.5 and FLUX.1 (tiny random-weight models): the pictures,
seeds, masks, FLUX's distilled guidance, infotext round trips, the fields that do not apply (named), the API
route with Forge's component files and the img2img tab's handler."""
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
from tests import tiny_flow_models
from tests.inprocess_app import api_client

FLOW = ["tiny-flux-dev", "tiny-flux-schnell", "tiny-sd3"]


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    models = tmp_path_factory.mktemp("flow-img2img-models")
    sd = models / "Stable-diffusion"
    tiny_flow_models.make_tiny_sd3(sd / "tiny-sd3")
    flux = tiny_flow_models.make_tiny_flux(sd / "tiny-flux-dev")
    tiny_flow_models.make_tiny_flux(sd / "tiny-flux-schnell", dev=False)
    for sub in ("VAE", "Latent", "GAN", "text_encoder"):
        (models / sub).mkdir(exist_ok=True)
    tiny_flow_models.make_flux_component_files(flux, models, name="tiny-flux-transformer")
    work = tmp_path_factory.mktemp("flow-img2img")
    return Backend(BackendConfig(models_dir=models, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


@pytest.fixture(scope="module")
def modules(backend):
    """The transformer-only FLUX file's component files, as the picker lists them."""
    names = backend.component_file_names()
    return [next(n for n in names if part in n) for part in ("ae", "clip_l", "t5xxl")]


def picture(seed: int = 0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((64, 64, 3)) * 255).astype(np.uint8))


def square_mask() -> Image.Image:
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 47), fill=255)
    return mask


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def request(checkpoint: str, **overrides) -> Img2ImgRequest:
    values = dict(prompt="a red circle", negative_prompt="blurry", steps=4, width=64, height=64, seed=3,
                  sampler="Euler", cfg_scale=4.0 if checkpoint == "tiny-sd3" else 1.0, checkpoint=checkpoint,
                  init_images=[picture()], denoising_strength=0.75, save_images=False)
    values.update(overrides)
    return Img2ImgRequest(**values)


def run(backend, **values):
    return backend.run(IMG2IMG, request(**values))


@pytest.mark.parametrize("checkpoint", FLOW)
def test_img2img_makes_a_picture_that_its_seed_reproduces(backend, checkpoint):
    first = run(backend, checkpoint=checkpoint)
    again = run(backend, checkpoint=checkpoint)
    other = run(backend, checkpoint=checkpoint, seed=4)
    assert first.images[0].size == (64, 64)
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))
    assert not np.array_equal(pixels(first.images[0]), pixels(other.images[0]))
    kept = run(backend, checkpoint=checkpoint, denoising_strength=0.0)  # strength 0: the picture through the VAE
    weaker = run(backend, checkpoint=checkpoint, denoising_strength=0.3)
    assert not np.array_equal(pixels(first.images[0]), pixels(weaker.images[0]))
    assert np.array_equal(pixels(kept.images[0]), pixels(run(backend, checkpoint=checkpoint, seed=9,
                                                            denoising_strength=0.0).images[0]))


@pytest.mark.parametrize("checkpoint", FLOW)
@pytest.mark.parametrize("only_masked", [False, True])
def test_inpainting_changes_the_masked_area_only(backend, checkpoint, only_masked):
    init = picture()
    result = run(backend, checkpoint=checkpoint, mask=square_mask(), mask_blur=0, inpaint_full_res=only_masked,
                 inpaint_full_res_padding=8, denoising_strength=0.9).images[0]
    inside = np.zeros((64, 64), dtype=bool)
    inside[16:48, 16:48] = True
    difference = np.abs(pixels(result) - pixels(init)).max(axis=2)
    assert difference[~inside].max() == 0  # outside the mask: the original, exactly
    assert difference[inside].mean() > 5
    blurred = run(backend, checkpoint=checkpoint, mask=square_mask(), mask_blur=4, inpaint_full_res=only_masked,
                  denoising_strength=0.9).images[0]
    reach = np.zeros((64, 64), dtype=bool)
    reach[16 - 10:48 + 10, 16 - 10:48 + 10] = True  # round(2.5 × 4) pixels of blur around the mask
    assert np.abs(pixels(blurred) - pixels(init)).max(axis=2)[~reach].max() == 0


def test_masked_content_and_mask_invert_on_flux(backend):
    init, mask = picture(), square_mask()
    made = {fill: pixels(run(backend, checkpoint="tiny-flux-dev", mask=mask, mask_blur=0, inpainting_fill=fill,
                             denoising_strength=0.8).images[0]) for fill in range(4)}
    for fill in range(1, 4):
        assert not np.array_equal(made[0], made[fill]), fill
    inverted = pixels(run(backend, checkpoint="tiny-flux-dev", mask=mask, mask_blur=0, inpainting_mask_invert=True,
                          denoising_strength=0.8).images[0])
    assert np.array_equal(inverted[16:48, 16:48], pixels(init)[16:48, 16:48])  # the square is kept now
    padded = run(backend, checkpoint="tiny-flux-dev", pad_left=16, pad_right=16, mask_blur=0,
                 denoising_strength=0.8).images[0]
    assert padded.size == (96, 64)
    assert np.array_equal(pixels(padded)[:, 16:80], pixels(init))  # outpainting keeps the picture


def test_flux_dev_distilled_guidance_carries_over_and_schnell_ignores_it(backend, tmp_path):
    low = run(backend, checkpoint="tiny-flux-dev", distilled_cfg_scale=1.0)
    high = run(backend, checkpoint="tiny-flux-dev", distilled_cfg_scale=8.0)
    assert not np.array_equal(pixels(low.images[0]), pixels(high.images[0]))
    assert "Distilled CFG Scale: 8" in high.infotexts[0]
    schnell = [run(backend, checkpoint="tiny-flux-schnell", distilled_cfg_scale=value) for value in (1.0, 8.0)]
    assert np.array_equal(pixels(schnell[0].images[0]), pixels(schnell[1].images[0]))
    assert "Distilled CFG Scale" not in schnell[0].infotexts[0]
    real_cfg = run(backend, checkpoint="tiny-flux-dev", cfg_scale=3.0)  # real CFG with the negative prompt
    assert not np.array_equal(pixels(real_cfg.images[0]), pixels(low.images[0]))


@pytest.mark.parametrize("sampler", ["DPM++ 2M", "UniPC"])
@pytest.mark.parametrize("checkpoint", FLOW)
def test_the_flow_solvers_do_img2img_and_inpainting(backend, checkpoint, sampler):
    plain = run(backend, checkpoint=checkpoint, sampler=sampler)
    assert pixels(plain.images[0]).std() > 0
    masked = run(backend, checkpoint=checkpoint, sampler=sampler, mask=square_mask(), mask_blur=0).images[0]
    assert np.abs(pixels(masked) - pixels(picture()))[:16].max() == 0
    if checkpoint == "tiny-flux-schnell":  # its pipelines pass a resolution shift schnell's solvers must not take
        from modules.capabilities.txt2img.request import Txt2ImgRequest

        made = backend.txt2img(Txt2ImgRequest(prompt="a red circle", steps=2, width=64, height=64, seed=3,
                                              sampler=sampler, cfg_scale=1.0, checkpoint=checkpoint,
                                              save_images=False))
        assert pixels(made.images[0]).std() > 0


def test_variation_seeds_reach_flux_img2img(backend):
    plain = pixels(run(backend, checkpoint="tiny-flux-dev").images[0])
    varied = run(backend, checkpoint="tiny-flux-dev", subseed=11, subseed_strength=0.5)
    assert not np.array_equal(plain, pixels(varied.images[0]))
    assert np.array_equal(pixels(varied.images[0]),
                          pixels(run(backend, checkpoint="tiny-flux-dev", subseed=11,
                                     subseed_strength=0.5).images[0]))
    assert "Variation seed: 11" in varied.infotexts[0]


def test_infotext_round_trips_through_the_png(backend):
    from modules.ui.pnginfo_tab import flow_values, send_values

    result = run(backend, checkpoint="tiny-flux-dev", save_images=True, mask=square_mask(), mask_blur=2,
                 inpaint_full_res=True, distilled_cfg_scale=2.5, denoising_strength=0.6, seed=8)
    with Image.open(result.paths[0]) as saved:
        fields = parse_infotext(saved.info["parameters"])
    assert (fields["Seed"], fields["Denoising strength"], fields["Mask blur"]) == ("8", "0.6", "2")
    assert fields["Inpaint area"] == "Only masked" and fields["Model"] == "tiny-flux-dev"
    assert send_values(fields)[2:5] == ["Euler", 4, 1.0] and flow_values(fields)[0] == 2.5


@pytest.mark.parametrize("field, values, words", [
    ("tiling", {"tiling": True}, "Tiling pads a UNet's convolutions"),
    ("width", {"width": 72}, "side of 72 pixels; FLUX.1 dev models need multiples of 16"),
    ("pad_left", {"pad_left": 8}, "side of 72 pixels"),
    ("refiner_checkpoint", {"refiner_checkpoint": "tiny-flux-schnell"}, "refiner is not available for FLUX.1 dev"),
    ("sampler", {"sampler": "Euler a"}, "does not work with FLUX.1 dev models"),
    ("cfg_scale", {"cfg_scale": 0.5}, "uses 1 (off)"),
])
def test_what_does_not_apply_to_flux_is_refused_naming_the_field(backend, field, values, words):
    with pytest.raises(InvalidRequest) as refused:
        run(backend, checkpoint="tiny-flux-dev", **values)
    assert refused.value.field == field and words in str(refused.value)


def test_prompt_editing_and_alternation_switch_the_transformers_text(backend):
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    for checkpoint, cfg in (("tiny-flux-dev", 1.0), ("tiny-flux-dev", 3.0), ("tiny-sd3", 4.0)):
        def made(prompt, negative="blurry", img2img=False):
            if img2img:
                return pixels(run(backend, checkpoint=checkpoint, prompt=prompt, negative_prompt=negative,
                                  cfg_scale=cfg, steps=6, denoising_strength=1.0).images[0])
            return pixels(backend.txt2img(Txt2ImgRequest(
                prompt=prompt, negative_prompt=negative, steps=4, width=64, height=64, seed=7, sampler="Euler",
                cfg_scale=cfg, checkpoint=checkpoint, save_images=False)).images[0])

        red, blue = made("a red circle"), made("a blue square")
        edited = made("[a red circle:a blue square:2]")
        assert not np.array_equal(edited, red) and not np.array_equal(edited, blue), checkpoint
        assert np.array_equal(edited, made("[a red circle:a blue square:2]"))  # reproducible
        assert np.array_equal(made("[a red circle:a blue square:10]"), red)  # after the last step: never
        assert not np.array_equal(made("[a red circle|a blue square]"), red)
        negative_edit = made("a red circle", negative="[blurry:sharp:2]")
        # the negative prompt counts only with CFG (SD3's CFG scale; FLUX's above 1)
        assert np.array_equal(negative_edit, red) == (checkpoint == "tiny-flux-dev" and cfg == 1.0)
        whole = made("a red circle", img2img=True)
        assert not np.array_equal(made("[a red circle:a blue square:3]", img2img=True), whole)


def test_flux_hires_fix_runs_through_img2img(backend):
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    result = backend.txt2img(Txt2ImgRequest(prompt="a red circle", steps=2, width=64, height=64, seed=3,
                                            sampler="Euler", cfg_scale=1.0, checkpoint="tiny-flux-dev",
                                            enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", save_images=False))
    assert result.images[0].size == (96, 96) and pixels(result.images[0]).std() > 0
    with pytest.raises(InvalidRequest, match="side of 72 pixels") as refused:
        backend.txt2img(Txt2ImgRequest(prompt="a red circle", steps=2, width=64, height=64, checkpoint="tiny-flux-dev",
                                       sampler="Euler", cfg_scale=1.0, enable_hr=True, hr_scale=1.125,
                                       save_images=False))
    assert refused.value.field == "hr_scale"


@pytest.fixture(scope="module")
def client(backend):
    with api_client(backend, backend.config.outdir.parent / "api") as client:
        yield client


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_api_inpaints_a_transformer_only_flux_file_with_forges_modules(client, modules):
    init = picture(2)
    body = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 3, "sampler_name": "Euler",
            "cfg_scale": 1, "seed": 5, "distilled_cfg_scale": 4.5, "init_images": [_b64(init)],
            "mask": _b64(square_mask()), "mask_blur": 0, "inpaint_full_res": False, "denoising_strength": 0.9,
            "override_settings": {"sd_model_checkpoint": "tiny-flux-transformer",
                                  "forge_additional_modules": modules}}
    answer = client.post("/sdapi/v1/img2img", json=body)
    assert answer.status_code == 200, answer.text
    image = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
    difference = np.abs(pixels(image) - pixels(init)).max(axis=2)
    assert difference[:16].max() == 0 and difference[16:48, 16:48].mean() > 5
    info = json.loads(answer.json()["info"])
    fields = parse_infotext(info["infotexts"][0])
    assert fields["Distilled CFG Scale"] == "4.5" and fields["Module 1"] == modules[0]
    assert fields["Denoising strength"] == "0.9"
    again = client.post("/sdapi/v1/img2img", json=body)
    assert again.json()["images"][0] == answer.json()["images"][0]  # the seed reproduces
    missing = client.post("/sdapi/v1/img2img", json={**body, "override_settings": {
        "sd_model_checkpoint": "tiny-flux-transformer", "forge_additional_modules": modules[:1]}})
    assert missing.status_code >= 400 and "CLIP-L text encoder, T5-XXL text encoder" in missing.text
    tiled = client.post("/sdapi/v1/img2img", json={**body, "tiling": True})
    assert tiled.status_code == 422 and tiled.json()["field"] == "tiling"


def test_the_img2img_tab_takes_the_component_files_and_distilled_guidance(backend, modules):
    import gradio as gr

    from modules.ui import checkpoint_picker
    from modules.ui.generation_tab import BASE_NAMES
    from modules.ui.img2img_tab import FLOW_NAMES, NAMES, Img2ImgTab
    from modules.ui.img2img_inputs import INPAINT_UPLOAD
    from modules.ui.refiner_controls import NAMES as REFINER_NAMES

    with gr.Blocks():
        picker = checkpoint_picker.build_component_picker(backend)
        tab = Img2ImgTab(backend, gr.Dropdown(backend.checkpoint_titles(), value=None),
                         checkpoint_picker.build_component_picker(backend, same_as=picker))
        tab.build()
    assert set(modules) <= set(c[0] for c in tab.modules.choices)
    picked = tab.family_values("tiny-flux-dev", "Euler a")  # a FLUX pick: its samplers, steps, CFG 1, distilled
    assert picked[0].value == "Euler" and "Euler a" not in [c[0] for c in picked[0].choices]
    assert picked[1:3] == [20, 1.0] and picked[3].visible is True
    init = picture(4)
    base = dict(checkpoint="tiny-flux-transformer", prompt="a red circle", negative_prompt="", sampler="Euler",
                steps=3, cfg_scale=1.0, width=64, height=64, seed=6, batch_count=1, batch_size=1,
                scheduler="Automatic", seed_extra=False, subseed=-1, subseed_strength=0, seed_resize_from_w=0,
                seed_resize_from_h=0, styles=[])
    own = dict(mode=INPAINT_UPLOAD, init_image=None, inpaint_sketch=None, inpaint_image=init,
               inpaint_mask=square_mask(), resize_mode=0, denoising_strength=0.9, mask_blur=0, mask_mode=0,
               inpainting_fill=1, inpaint_full_res=1, inpaint_full_res_padding=8, pad_left=0, pad_right=0,
               pad_top=0, pad_bottom=0)
    flow = dict(distilled_cfg_scale=2.0, forge_additional_modules=modules)
    values = ([base[n] for n in BASE_NAMES] + [own[n] for n in NAMES] + [False, None, 0.8]
              + [flow[n] for n in FLOW_NAMES])
    assert len(REFINER_NAMES) == 3
    answers = list(tab._generate(*values, request=SimpleNamespace(username=None, session_hash="flow-img2img")))
    text = answers[-1][tab.infotext]
    assert "Distilled CFG Scale: 2" in text and f"Module 3: {modules[2]}" in text and "Inpaint area: Only masked" in text
    made = answers[-1][tab.gallery][0][0]  # (picture, caption)
    difference = np.abs(pixels(made) - pixels(init)).max(axis=2)
    assert difference[:8].max() == 0 and difference[16:48, 16:48].mean() > 5
