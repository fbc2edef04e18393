"""Z-Image end to end on a tiny random-weight model (tests/tiny_zimage.py): the diffusers folder, an all-in-one
file and the transformer-only file completed with ae / qwen_3_4b component files; txt2img, CFG as Turbo wants it,
its samplers, infotext and PNG Info, memory accounting, and what is refused by name."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modules.errors import BadModelFile, InvalidRequest
from modules.generation.infotext import parse_infotext
from tests import tiny_zimage
from tests.inprocess_app import api_client


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    models = tmp_path_factory.mktemp("zimage-models")
    sd = models / "Stable-diffusion"
    folder = tiny_zimage.make_tiny_zimage(sd / "tiny-zimage")
    tiny_zimage.make_checkpoint_file(folder, sd / "tiny-zimage-aio.safetensors")
    for sub in ("VAE", "Latent", "GAN", "text_encoder"):
        (models / sub).mkdir(exist_ok=True)
    tiny_zimage.make_component_files(folder, models, name="tiny-zimage-turbo")
    work = tmp_path_factory.mktemp("zimage-backend")
    return Backend(BackendConfig(models_dir=models, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


@pytest.fixture(scope="module")
def files():
    return {"vae": "tiny-zimage-turbo-ae.safetensors", "qwen3": "tiny-zimage-turbo-qwen_3_4b.safetensors"}


def _request(**overrides):
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    values = dict(prompt="a red circle on a white background", negative_prompt="blurry", steps=3, width=64,
                  height=64, seed=1234, sampler="Euler", cfg_scale=1.0, save_images=False, checkpoint="tiny-zimage")
    values.update(overrides)
    return Txt2ImgRequest(**values)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("name", ["tiny-zimage", "tiny-zimage-aio.safetensors", "tiny-zimage-turbo.safetensors"])
def test_each_layout_is_recognised_by_the_zimage_family_alone(backend, name):
    from modules.models import detect, families
    from modules.models.safetensors_header import read_header

    path = backend.config.models_dir / "Stable-diffusion" / name
    if path.is_dir():
        facts = detect.config_facts(path)
        assert [f.name for f in families.FAMILIES if f.recognises_config(facts)] == ["zimage"]
    else:
        shapes = {k: v["shape"] for k, v in read_header(path)[0].items()}
        assert [f.name for f in families.FAMILIES if f.recognises_header(shapes)] == ["zimage"]
    info = backend.manager.resolve(name.removesuffix(".safetensors"))
    assert info.usable, info.error
    assert info.architecture.label == "Z-Image" and info.native_size == 1024


def test_txt2img_makes_an_image_and_a_seed_reproduces(backend):
    one = backend.txt2img(_request(seed=77))
    again = backend.txt2img(_request(seed=77)).images[0]
    other = backend.txt2img(_request(seed=78)).images[0]
    image = one.images[0]
    assert image.size == (64, 64) and _pixels(image).std() > 0
    assert np.array_equal(_pixels(image), _pixels(again))
    assert not np.array_equal(_pixels(image), _pixels(other))
    assert "Model: tiny-zimage," in one.infotexts[0]


def test_a_batch_gives_each_seed_its_own_image(backend):
    alone = backend.txt2img(_request(seed=77, width=32, height=32)).images[0]
    batch = backend.txt2img(_request(seed=76, batch_size=2, width=32, height=32))
    assert batch.seeds[batch.index_of_first_image:] == [76, 77]
    assert np.abs(_pixels(batch.images[-1]) - _pixels(alone)).max() <= 1


def test_the_all_in_one_file_gives_the_folders_image(backend):
    folder = backend.txt2img(_request()).images[0]
    whole = backend.txt2img(_request(checkpoint="tiny-zimage-aio")).images[0]
    assert np.abs(_pixels(folder) - _pixels(whole)).max() <= 1


def test_the_transformer_only_file_names_the_qwen3_encoder_it_lacks(backend, files):
    info = backend.manager.resolve("tiny-zimage-turbo")
    assert info.architecture.missing_labels() == ["VAE", "Qwen3 text encoder"]
    with pytest.raises(BadModelFile, match="needs a VAE, Qwen3 text encoder: pick them"):
        backend.txt2img(_request(checkpoint="tiny-zimage-turbo"))
    with pytest.raises(BadModelFile, match="needs a Qwen3 text encoder: pick it in VAE / Text Encoder"):
        backend.txt2img(_request(checkpoint="tiny-zimage-turbo", forge_additional_modules=[files["vae"]]))


def test_the_transformer_only_file_with_its_component_files_makes_the_folders_image(backend, files):
    modules = [files["qwen3"], files["vae"]]  # any order: told apart by their tensors
    result = backend.txt2img(_request(checkpoint="tiny-zimage-turbo", forge_additional_modules=modules))
    folder = backend.txt2img(_request()).images[0]
    assert np.abs(_pixels(result.images[0]) - _pixels(folder)).max() <= 1
    fields = parse_infotext(result.infotexts[0])
    assert [fields["Module 1"], fields["Module 2"]] == modules
    from modules.models.refs import CHECKPOINT, ModelRef

    with backend.manager.use("tiny-zimage") as whole:
        encoder = whole.components["text_encoder"]
    with backend.manager.use(ModelRef(CHECKPOINT, "tiny-zimage-turbo", tuple(modules))) as completed:
        assert completed.components["text_encoder"] is encoder  # the same Qwen3 weights: one copy in the cache


def test_a_component_file_of_the_wrong_kind_is_named(backend, tmp_path):
    from tests import tiny_flow_models

    models = backend.config.models_dir
    flux = tiny_flow_models.make_tiny_flux(tmp_path / "flux")
    tiny_flow_models.make_flux_component_files(flux, models, name="other-flux", with_sidecar=False)
    with pytest.raises(InvalidRequest, match="other-flux-t5xxl.safetensors is a T5 text encoder, which "
                                             "tiny-zimage-turbo.safetensors does not need \\(it needs: VAE, Qwen3"):
        backend.txt2img(_request(checkpoint="tiny-zimage-turbo",
                                 forge_additional_modules=["other-flux-t5xxl.safetensors"]))


def test_cfg_1_is_turbos_no_guidance_and_above_1_uses_the_negative_prompt(backend):
    blue = backend.txt2img(_request(negative_prompt="blue")).images[0]
    dog = backend.txt2img(_request(negative_prompt="dog")).images[0]
    assert np.array_equal(_pixels(blue), _pixels(dog))  # CFG 1: the negative prompt is not read
    guided_blue = backend.txt2img(_request(negative_prompt="blue", cfg_scale=3.0)).images[0]
    guided_dog = backend.txt2img(_request(negative_prompt="dog", cfg_scale=3.0)).images[0]
    assert not np.array_equal(_pixels(guided_blue), _pixels(guided_dog))
    with pytest.raises(InvalidRequest, match="cfg_scale.*Z-Image uses 1"):
        backend.txt2img(_request(cfg_scale=0.5))


def test_its_samplers_make_images_and_others_are_refused(backend):
    from modules.generation.samplers import sampler_names

    family = backend.manager.resolve("tiny-zimage").architecture.spec
    assert sampler_names(family) == ["Euler"]
    for sampler in sampler_names(family):
        assert _pixels(backend.txt2img(_request(sampler=sampler)).images[0]).std() > 0, sampler
    with pytest.raises(InvalidRequest, match=r"sampler.*DPM\+\+ 2M.*does not work with Z-Image models; choose one "
                                             r"of: Euler$"):
        backend.txt2img(_request(sampler="DPM++ 2M"))
    with pytest.raises(InvalidRequest, match="UniPC"):
        backend.txt2img(_request(sampler="UniPC"))


def test_the_ui_starts_from_turbos_steps_and_cfg(backend):
    defaults = backend.checkpoint_defaults("tiny-zimage")
    assert (defaults["size"], defaults["steps"], defaults["cfg_scale"]) == (1024, 8, 1.0)
    assert defaults["samplers"] == ["Euler"] and defaults["distilled"] is False


def test_infotext_round_trips_through_the_png(backend):
    result = backend.txt2img(_request(save_images=True, seed=5, cfg_scale=2.0))
    with Image.open(result.paths[0]) as saved:
        fields = parse_infotext(saved.info["parameters"])
    assert fields["Prompt"] == "a red circle on a white background" and fields["Negative prompt"] == "blurry"
    assert fields["Seed"] == "5" and fields["Sampler"] == "Euler" and fields["CFG scale"] == "2"
    assert fields["Model"] == "tiny-zimage" and fields["Size-1"] == "64" and "Distilled CFG Scale" not in fields
    from modules.ui.pnginfo_tab import send_values

    assert send_values(fields)[2:5] == ["Euler", 3, 2.0]  # sampler, steps, CFG back into txt2img


def test_the_cache_counts_the_transformer(backend):
    from modules.models.memory import module_bytes

    with backend.manager.use("tiny-zimage") as model:
        transformer = module_bytes(model.pipe.transformer)
        assert model.components["transformer"].bytes == transformer > 0
        assert model.bytes >= transformer + module_bytes(model.pipe.text_encoder) + module_bytes(model.pipe.vae)


def test_emphasis_is_stripped_and_the_embedding_is_the_pipelines_own(backend):
    from modules.generation.prompt_embeds import encode_prompts

    with backend.manager.use("tiny-zimage") as model:
        pipe = model.pipe
        plain = encode_prompts(pipe, ["a red circle"], [""])
        weighted = encode_prompts(pipe, ["a (red:1.6) circle"], [""])
        own = pipe.encode_prompt(["a red circle"], do_classifier_free_guidance=False)[0]
    assert len(plain["prompt_embeds"]) == 1 and plain["prompt_embeds"][0].shape == own[0].shape
    assert (plain["prompt_embeds"][0] == own[0]).all() and (weighted["prompt_embeds"][0] == own[0]).all()


def test_what_z_image_does_not_do_is_refused_by_name(backend):
    with pytest.raises(InvalidRequest, match="clip_skip"):
        backend.txt2img(_request(clip_skip=2))
    with pytest.raises(InvalidRequest, match="prompt editing and alternation .* not supported on Z-Image"):
        backend.txt2img(_request(prompt="a [red:blue:0.5] circle"))
    with pytest.raises(InvalidRequest, match="width: gives a side of 72 pixels; Z-Image models need multiples of 16"):
        backend.txt2img(_request(width=72))


@pytest.fixture(scope="module")
def client(backend):
    with api_client(backend, backend.config.outdir.parent / "api") as client:
        yield client


def test_the_api_runs_the_transformer_only_file_with_forges_module_list(client, files):
    import base64
    import io
    import json

    listed = [m["model_name"] for m in client.get("/sdapi/v1/sd-modules").json()]
    assert {files["vae"], files["qwen3"]} <= set(listed)
    body = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "cfg_scale": 1,
            "seed": 3, "override_settings": {"sd_model_checkpoint": "tiny-zimage-turbo",
                                             "forge_additional_modules": [files["vae"], files["qwen3"]]}}
    answer = client.post("/sdapi/v1/txt2img", json=body)
    assert answer.status_code == 200, answer.text
    image = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
    assert image.size == (64, 64) and _pixels(image).std() > 0
    info = parse_infotext(json.loads(answer.json()["info"])["infotexts"][0])
    assert info["Module 2"] == files["qwen3"] and info["Steps"] == "2"
    missing = client.post("/sdapi/v1/txt2img", json={**body, "override_settings": {
        "sd_model_checkpoint": "tiny-zimage-turbo", "forge_additional_modules": [files["vae"]]}})
    assert missing.status_code >= 400 and "needs a Qwen3 text encoder" in missing.text
    low_cfg = client.post("/sdapi/v1/txt2img", json={**body, "cfg_scale": 0.5})
    assert low_cfg.status_code == 422 and low_cfg.json()["field"] == "cfg_scale"


def test_the_latent_explorer_reads_its_vae_with_the_flux_factors(backend):
    from modules.capabilities import latent
    from modules.capabilities.latent import sd_vae as sd
    from modules.capabilities.latent.models import using_sd_vae

    picture = Image.new("RGB", (64, 64), (200, 40, 40))
    encoded = backend.run(latent.SD_ENCODE, latent.SdVaeEncodeRequest("tiny-zimage", picture, 64))
    assert encoded.current.latent.shape == (16, 8, 8) and len(encoded.channels) == 16
    with using_sd_vae(backend, encoded.current.vae) as vae:
        geometry = sd.geometry(vae)
        assert (geometry.channels, geometry.scaling_factor, geometry.shift_factor) == (16, 0.3611, 0.1159)


def test_live_previews_show_its_latents(backend):
    from modules.capabilities.txt2img import TXT2IMG

    job = backend.new_job("txt2img")
    seen = []
    original = job.set_preview
    job.set_preview = lambda image: (seen.append(image.size), original(image))
    backend.run(TXT2IMG, _request(steps=6, width=32, height=32), job)
    assert seen == [(32, 32)]  # after step 5, the default every 5 steps


def test_the_txt2img_tab_switches_to_turbos_settings_and_runs_the_completed_file(backend, files):
    from types import SimpleNamespace

    import gradio as gr

    from modules.ui import checkpoint_picker
    from modules.ui.txt2img_tab import Txt2ImgTab

    with gr.Blocks():
        tab = Txt2ImgTab(backend, gr.Dropdown(backend.checkpoint_titles(), value=None),
                         checkpoint_picker.build_component_picker(backend))
        tab.build()
    picked = tab._checkpoint_picked("tiny-zimage-turbo", "DPM++ 2M")
    assert picked[:2] == [1024, 1024] and picked[3:5] == [8, 1.0]  # Turbo: 8 steps, CFG 1
    assert picked[2].value == "Euler" and [c[0] for c in picked[2].choices] == ["Euler"]
    assert picked[5].visible is False  # no distilled guidance control
    answers = list(tab._run("tiny-zimage-turbo", "a red circle", "", "Euler", 2, 1.0, 64, 64, 9, 1, 1, "Automatic",
                            False, -1, 0, 0, 0, SimpleNamespace(username=None, session_hash="zimage-ui"),
                            modules=[files["vae"], files["qwen3"]]))
    assert "Model: tiny-zimage-turbo" in answers[-1][tab.infotext]
    assert f"Module 2: {files['qwen3']}" in answers[-1][tab.infotext]
