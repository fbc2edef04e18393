"""SD 3/3.5 and FLUX.1 end to end on tiny random-weight models: folders and single files, txt2img,
seeds, infotext, memory accounting, distilled guidance, the flow-matching sampler lists."""
from __future__ import annotations

import numpy as np
import torch
import pytest
from PIL import Image

from modules.errors import InvalidRequest
from modules.generation.infotext import parse_infotext
from tests import tiny_flow_models
from tests.inprocess_app import api_client


@pytest.fixture(scope="module")
def flow_backend(tmp_path_factory):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    models = tmp_path_factory.mktemp("flow-models")
    sd = models / "Stable-diffusion"
    tiny_flow_models.make_tiny_sd3(sd / "tiny-sd3")
    tiny_flow_models.make_tiny_sd3(sd / "tiny-sd3-no-t5", with_t5=False)
    flux = tiny_flow_models.make_tiny_flux(sd / "tiny-flux-dev")
    tiny_flow_models.make_tiny_flux(sd / "tiny-flux-schnell", dev=False)
    tiny_flow_models.make_flux_checkpoint_file(flux, sd / "tiny-flux-whole.safetensors")
    tiny_flow_models.make_sd3_checkpoint_file(sd / "tiny-sd3", sd / "tiny-sd3-whole.safetensors")
    tiny_flow_models.make_sd3_checkpoint_file(sd / "tiny-sd3", sd / "tiny-sd3-clips-only.safetensors", with_t5=False)
    for sub in ("VAE", "Latent", "GAN", "text_encoder"):
        (models / sub).mkdir(exist_ok=True)
    work = tmp_path_factory.mktemp("flow-backend")
    return Backend(BackendConfig(models_dir=models, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=device_config("cpu"), offline=True))


def _request(**overrides):
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    values = dict(prompt="a red circle on a white background", negative_prompt="blurry", steps=3, width=64,
                  height=64, seed=1234, sampler="Euler", cfg_scale=1.0, save_images=False)
    values.update(overrides)
    return Txt2ImgRequest(**values)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("checkpoint, label", [("tiny-sd3", "SD 3/3.5"), ("tiny-sd3-no-t5", "SD 3/3.5"),
                                               ("tiny-flux-dev", "FLUX.1 dev"),
                                               ("tiny-flux-schnell", "FLUX.1 schnell"),
                                               ("tiny-flux-whole", "FLUX.1 dev"), ("tiny-sd3-whole", "SD 3/3.5"),
                                               ("tiny-sd3-clips-only", "SD 3/3.5")])
def test_each_layout_is_detected_and_makes_an_image(flow_backend, checkpoint, label):
    info = flow_backend.manager.resolve(checkpoint)
    assert info.usable, info.error
    assert info.architecture.label == label
    cfg = 4.0 if label.startswith("SD 3") else 1.0
    result = flow_backend.txt2img(_request(checkpoint=checkpoint, cfg_scale=cfg))
    assert result.images[0].size == (64, 64)
    assert _pixels(result.images[0]).std() > 0
    assert f"Model: {checkpoint}," in result.infotexts[0]


@pytest.mark.parametrize("folder, single", [("tiny-flux-dev", "tiny-flux-whole"), ("tiny-sd3", "tiny-sd3-whole")])
def test_a_whole_single_file_gives_the_same_image_as_its_folder(flow_backend, folder, single):
    cfg = 4.0 if folder.startswith("tiny-sd3") else 1.0
    from_folder = flow_backend.txt2img(_request(checkpoint=folder, cfg_scale=cfg)).images[0]
    from_file = flow_backend.txt2img(_request(checkpoint=single, cfg_scale=cfg)).images[0]
    assert np.abs(_pixels(from_folder) - _pixels(from_file)).max() <= 1


def test_sd3_without_t5_runs_with_zeros_in_its_place(flow_backend):
    with_t5 = flow_backend.txt2img(_request(checkpoint="tiny-sd3-whole", cfg_scale=4.0)).images[0]
    without = flow_backend.txt2img(_request(checkpoint="tiny-sd3-clips-only", cfg_scale=4.0)).images[0]
    assert not np.array_equal(_pixels(with_t5), _pixels(without))
    with flow_backend.manager.use("tiny-sd3-clips-only") as model:
        assert model.pipe.text_encoder_3 is None and "text_encoder_3" not in model.components


@pytest.mark.parametrize("checkpoint", ["tiny-sd3", "tiny-flux-dev"])
def test_a_seed_reproduces_and_batches_do_not_change_it(flow_backend, checkpoint):
    one = flow_backend.txt2img(_request(checkpoint=checkpoint, seed=77)).images[0]
    again = flow_backend.txt2img(_request(checkpoint=checkpoint, seed=77)).images[0]
    batch = flow_backend.txt2img(_request(checkpoint=checkpoint, seed=76, batch_size=2))
    other = flow_backend.txt2img(_request(checkpoint=checkpoint, seed=78)).images[0]
    assert np.array_equal(_pixels(one), _pixels(again))
    assert batch.index_of_first_image == 1 and batch.seeds[1:] == [76, 77]  # the batch grid comes first
    assert np.abs(_pixels(batch.images[2]) - _pixels(one)).max() <= 1
    assert not np.array_equal(_pixels(one), _pixels(other))


@pytest.mark.parametrize("checkpoint", ["tiny-sd3", "tiny-flux-dev"])
def test_every_offered_sampler_makes_an_image_and_others_are_refused(flow_backend, checkpoint):
    from modules.generation.samplers import sampler_names

    family = flow_backend.manager.resolve(checkpoint).architecture.spec
    offered = sampler_names(family)
    assert {"Euler", "DPM++ 2M", "UniPC"} <= set(offered)
    for sampler in offered:
        result = flow_backend.txt2img(_request(checkpoint=checkpoint, sampler=sampler, cfg_scale=1.0))
        assert _pixels(result.images[0]).std() > 0, sampler
    with pytest.raises(InvalidRequest, match=r"sampler.*Euler a.*does not work with .*choose one of: Euler"):
        flow_backend.txt2img(_request(checkpoint=checkpoint, sampler="Euler a"))


def test_distilled_guidance_is_its_own_control_on_flux_dev(flow_backend):
    low = flow_backend.txt2img(_request(checkpoint="tiny-flux-dev", distilled_cfg_scale=1.0))
    high = flow_backend.txt2img(_request(checkpoint="tiny-flux-dev", distilled_cfg_scale=9.0))
    assert not np.array_equal(_pixels(low.images[0]), _pixels(high.images[0]))
    fields = parse_infotext(high.infotexts[0])
    assert fields["Distilled CFG Scale"] == "9" and fields["CFG scale"] == "1"
    schnell = flow_backend.txt2img(_request(checkpoint="tiny-flux-schnell"))
    assert "Distilled CFG Scale" not in schnell.infotexts[0]  # schnell takes no guidance value


def test_a_cfg_scale_above_1_on_flux_is_real_cfg_with_the_negative_prompt(flow_backend):
    plain = flow_backend.txt2img(_request(checkpoint="tiny-flux-dev", cfg_scale=1.0, negative_prompt="blue"))
    other_negative = flow_backend.txt2img(_request(checkpoint="tiny-flux-dev", cfg_scale=1.0, negative_prompt="dog"))
    assert np.array_equal(_pixels(plain.images[0]), _pixels(other_negative.images[0]))  # CFG 1: no negative
    cfg = flow_backend.txt2img(_request(checkpoint="tiny-flux-dev", cfg_scale=3.0, negative_prompt="blue"))
    cfg_other = flow_backend.txt2img(_request(checkpoint="tiny-flux-dev", cfg_scale=3.0, negative_prompt="dog"))
    assert not np.array_equal(_pixels(cfg.images[0]), _pixels(cfg_other.images[0]))
    with pytest.raises(InvalidRequest, match="cfg_scale.*FLUX.1 dev uses 1"):
        flow_backend.txt2img(_request(checkpoint="tiny-flux-dev", cfg_scale=0.5))


def test_infotext_round_trips_through_the_png(flow_backend, tmp_path):
    result = flow_backend.txt2img(_request(checkpoint="tiny-flux-dev", save_images=True, seed=5,
                                           distilled_cfg_scale=2.5))
    with Image.open(result.paths[0]) as saved:
        fields = parse_infotext(saved.info["parameters"])
    assert fields["Prompt"] == "a red circle on a white background"
    assert fields["Seed"] == "5" and fields["Sampler"] == "Euler" and fields["Distilled CFG Scale"] == "2.5"
    assert fields["Model"] == "tiny-flux-dev" and fields["Size-1"] == "64"
    from modules.ui.pnginfo_tab import flow_values, send_values

    assert send_values(fields)[2:5] == ["Euler", 3, 1.0]  # sampler, steps, CFG back into txt2img
    assert flow_values(fields)[0] == 2.5
    with_modules = parse_infotext(result.infotexts[0] + ", Module 1: ae.safetensors, Module 2: clip_l.safetensors")
    assert flow_values(with_modules) == [2.5, ["ae.safetensors", "clip_l.safetensors"]]


def test_emphasis_changes_sd3_but_t5_reads_the_plain_prompt():
    from modules.generation.t5_embeds import plain_text

    assert plain_text("a (red:1.4) circle BREAK on [white] background") == "a red circle on white background"


def test_the_cache_counts_the_transformer(flow_backend):
    from modules.models.memory import module_bytes

    with flow_backend.manager.use("tiny-flux-dev") as model:
        transformer = module_bytes(model.pipe.transformer)
        assert "transformer" in model.components
        assert model.components["transformer"].bytes == transformer
        assert model.bytes >= transformer + module_bytes(model.pipe.vae)
    row = next(r for r in flow_backend.cached_models() if r["title"].startswith("tiny-flux-dev"))
    assert row["bytes"] >= transformer


def test_checkpoints_of_a_family_share_their_text_encoders_and_vae(flow_backend):
    with flow_backend.manager.use("tiny-flux-dev") as folder:
        t5 = folder.components["text_encoder_2"]
    with flow_backend.manager.use("tiny-flux-whole") as whole:
        assert whole.components["text_encoder_2"] is t5  # same weights, one copy
        assert whole.components["vae"] is folder.components["vae"]


@pytest.fixture(scope="module")
def component_files(flow_backend):
    """BFL's transformer-only file plus ae / clip_l / t5xxl files, from the tiny FLUX dev folder."""
    models = flow_backend.config.models_dir
    paths = tiny_flow_models.make_flux_component_files(models / "Stable-diffusion" / "tiny-flux-dev", models,
                                                       name="tiny-flux-transformer")
    flow_backend.refresh_checkpoints()
    return {part: path.name for part, path in paths.items()}


def test_a_transformer_only_file_without_its_components_names_what_it_lacks(flow_backend, component_files):
    from modules.errors import BadModelFile

    info = flow_backend.manager.resolve("tiny-flux-transformer")
    assert info.usable and info.architecture.missing_labels() == ["VAE", "CLIP-L text encoder",
                                                                  "T5-XXL text encoder"]
    with pytest.raises(BadModelFile, match="needs a VAE, CLIP-L text encoder, T5-XXL text encoder: pick them"):
        flow_backend.txt2img(_request(checkpoint="tiny-flux-transformer"))
    without_t5 = [component_files["vae"], component_files["clip_l"]]
    with pytest.raises(BadModelFile, match="needs a T5-XXL text encoder: pick it in VAE / Text Encoder"):
        flow_backend.txt2img(_request(checkpoint="tiny-flux-transformer", forge_additional_modules=without_t5))
    with pytest.raises(InvalidRequest, match="no component file 'nothing.safetensors'"):
        flow_backend.txt2img(_request(checkpoint="tiny-flux-transformer",
                                      forge_additional_modules=[*without_t5, "nothing.safetensors"]))


def test_a_transformer_only_file_with_its_component_files_makes_the_folders_image(flow_backend, component_files):
    modules = [component_files["t5xxl"], component_files["vae"], component_files["clip_l"]]  # any order
    result = flow_backend.txt2img(_request(checkpoint="tiny-flux-transformer", forge_additional_modules=modules))
    folder = flow_backend.txt2img(_request(checkpoint="tiny-flux-dev")).images[0]
    assert np.abs(_pixels(result.images[0]) - _pixels(folder)).max() <= 1
    fields = parse_infotext(result.infotexts[0])
    assert [fields[f"Module {i}"] for i in (1, 2, 3)] == modules
    with flow_backend.manager.use("tiny-flux-dev") as whole:
        t5 = whole.components["text_encoder_2"]
    from modules.models.refs import CHECKPOINT, ModelRef

    with flow_backend.manager.use(ModelRef(CHECKPOINT, "tiny-flux-transformer", tuple(modules))) as completed:
        assert completed.components["text_encoder_2"] is t5  # the same T5 weights: one copy in the cache
        assert completed.components["transformer"].bytes > 0


def test_a_component_file_that_fits_nothing_is_named(flow_backend, component_files):
    with pytest.raises(InvalidRequest, match="forge_additional_modules.*tiny-flux-dev.* takes no component files"):
        flow_backend.txt2img(_request(checkpoint="tiny-flux-dev", forge_additional_modules=[component_files["vae"]]))


def test_sd3_img2img_and_hires_fix_make_images(flow_backend):
    from modules.capabilities.img2img import IMG2IMG, Img2ImgRequest

    picture = Image.new("RGB", (64, 64), (200, 40, 40))
    result = flow_backend.run(IMG2IMG, Img2ImgRequest(init_images=[picture], prompt="a red circle", steps=4,
                                                      width=64, height=64, sampler="Euler", cfg_scale=4.0, seed=3,
                                                      denoising_strength=0.5, checkpoint="tiny-sd3",
                                                      save_images=False))
    assert result.images[0].size == (64, 64) and _pixels(result.images[0]).std() > 0
    stronger = flow_backend.run(IMG2IMG, Img2ImgRequest(init_images=[picture], prompt="a red circle", steps=4,
                                                        width=64, height=64, sampler="Euler", cfg_scale=4.0, seed=3,
                                                        denoising_strength=0.9, checkpoint="tiny-sd3",
                                                        save_images=False))
    assert not np.array_equal(_pixels(result.images[0]), _pixels(stronger.images[0]))
    hires = flow_backend.txt2img(_request(checkpoint="tiny-sd3", cfg_scale=4.0, enable_hr=True, hr_scale=1.5, steps=2,
                                          hr_upscaler="Latent"))
    assert hires.images[0].size == (96, 96)


@pytest.fixture(scope="module")
def client(flow_backend, component_files):
    with api_client(flow_backend, flow_backend.config.outdir.parent / "api") as client:
        yield client


def test_the_api_takes_forges_module_list_and_distilled_cfg(client, component_files):
    import base64
    import io

    listed = [m["model_name"] for m in client.get("/sdapi/v1/sd-modules").json()]
    assert set(component_files[p] for p in ("vae", "clip_l", "t5xxl")) <= set(listed)
    body = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "cfg_scale": 1,
            "seed": 3, "distilled_cfg_scale": 5,
            "override_settings": {"sd_model_checkpoint": "tiny-flux-transformer",
                                  # Forge's clients send full paths: only the file name is used, in our folders
                                  "forge_additional_modules": [f"/elsewhere/models/VAE/{component_files['vae']}",
                                                               component_files["clip_l"], component_files["t5xxl"]]}}
    answer = client.post("/sdapi/v1/txt2img", json=body)
    assert answer.status_code == 200, answer.text
    image = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
    assert image.size == (64, 64) and _pixels(image).std() > 0
    info = parse_infotext(answer.json()["info"] and __import__("json").loads(answer.json()["info"])["infotexts"][0])
    assert info["Distilled CFG Scale"] == "5" and info["Module 1"] == component_files["vae"]
    missing = client.post("/sdapi/v1/txt2img", json={**body, "override_settings": {
        "sd_model_checkpoint": "tiny-flux-transformer", "forge_additional_modules": [component_files["vae"]]}})
    assert missing.status_code >= 400 and "CLIP-L text encoder, T5-XXL text encoder" in missing.text
    wrong_sampler = client.post("/sdapi/v1/txt2img", json={**body, "sampler_name": "Euler a"})
    assert wrong_sampler.status_code == 422 and wrong_sampler.json()["field"] == "sampler_name"
    assert "does not work with FLUX.1 dev models; choose one of: Euler, DPM++ 2M, UniPC" in wrong_sampler.text
    low_cfg = client.post("/sdapi/v1/txt2img", json={**body, "cfg_scale": 0.5})
    assert low_cfg.status_code == 422 and low_cfg.json()["field"] == "cfg_scale"


def test_the_ui_picks_samplers_steps_and_cfg_by_family_and_runs_with_component_files(flow_backend, component_files):
    from types import SimpleNamespace

    import gradio as gr

    from modules.ui import checkpoint_picker
    from modules.ui.txt2img_tab import Txt2ImgTab

    with gr.Blocks():
        checkpoint = gr.Dropdown(flow_backend.checkpoint_titles(), value=None)
        tab = Txt2ImgTab(flow_backend, checkpoint, checkpoint_picker.build_component_picker(flow_backend))
        tab.build()
    assert set(component_files[p] for p in ("vae", "clip_l", "t5xxl")) <= set(c[0] for c in tab.modules.choices)
    with gr.Blocks():  # a page opened with FLUX.1 schnell as the checkpoint starts from its family's values
        opened = Txt2ImgTab(flow_backend, gr.Dropdown(flow_backend.checkpoint_titles(), value="tiny-flux-schnell",
                                                      allow_custom_value=True))
        opened.build()
    assert (opened.sampler.value, opened.steps.value, opened.cfg_scale.value) == ("Euler", 4, 1.0)
    schnell = tab._checkpoint_picked("tiny-flux-schnell", "Euler a")
    assert schnell[:2] == [1024, 1024] and schnell[3:5] == [4, 1.0]  # FLUX configs give no size: 1024; 4 steps, CFG 1
    assert schnell[2].value == "Euler" and "Heun" not in [c[0] for c in schnell[2].choices]
    assert schnell[5].visible is False  # no distilled guidance on schnell
    dev = tab._checkpoint_picked("tiny-flux-dev", "UniPC")
    assert dev[2].value == "UniPC" and dev[5].visible is True
    sd3 = tab._checkpoint_picked("tiny-sd3", "Euler")
    assert "Heun" in [c[0] for c in sd3[2].choices]
    modules = [component_files["vae"], component_files["clip_l"], component_files["t5xxl"]]
    answers = list(tab._run("tiny-flux-transformer", "a red circle", "", "Euler", 2, 1.0, 64, 64, 9, 1, 1, "Automatic", False, -1, 0, 0, 0,
                            SimpleNamespace(username=None, session_hash="flow-ui"), distilled_cfg_scale=2.0,
                            modules=modules))
    assert "Distilled CFG Scale: 2" in answers[-1][tab.infotext] and "Module 3:" in answers[-1][tab.infotext]


@pytest.mark.parametrize("source, scaling, shift", [("tiny-sd3", 1.5305, 0.0609), ("tiny-flux-dev", 0.3611, 0.1159),
                                                    ("tiny-flux-transformer-ae.safetensors", 0.3611, 0.1159)])
def test_the_latent_explorer_sd_vae_mode_uses_16_channels_and_the_familys_factors(flow_backend, component_files,
                                                                                  source, scaling, shift):
    from modules.capabilities import latent
    from modules.capabilities.latent import sd_vae as sd
    from modules.capabilities.latent.models import using_sd_vae
    from modules.capabilities.latent.sd_request import SdVaeEdit

    picture = Image.new("RGB", (64, 64), (200, 40, 40))
    encoded = flow_backend.run(latent.SD_ENCODE, latent.SdVaeEncodeRequest(source, picture, 64))
    current = encoded.current
    assert current.latent.shape == (16, 8, 8) and len(encoded.channels) == 16
    with using_sd_vae(flow_backend, current.vae) as vae:
        geometry = sd.geometry(vae)
        assert (geometry.channels, geometry.scaling_factor, geometry.shift_factor) == (16, scaling, shift)
        # scaled as the transformer sees latents, (mean - shift) * scaling: σ near 1, unlike the raw mean
        assert sd.encode_pixels(vae, np.array(picture)[None]).shape == (1, 16, 8, 8)
    moved = flow_backend.run(latent.SD_DECODE, latent.SdVaeDecodeRequest(current, SdVaeEdit(offsets=[0.0] * 15 + [2.0])))
    assert not np.array_equal(np.asarray(moved.image), np.asarray(encoded.image))



def test_an_sd35_style_file_takes_clip_l_clip_g_and_optionally_t5_from_files(flow_backend):
    from modules.errors import BadModelFile

    models = flow_backend.config.models_dir
    paths = tiny_flow_models.make_sd35_style_files(models / "Stable-diffusion" / "tiny-sd3", models)
    flow_backend.refresh_checkpoints()
    names = {part: path.name for part, path in paths.items()}
    info = flow_backend.manager.resolve("sd35-tiny")
    assert info.architecture.missing_labels() == ["CLIP-L text encoder", "CLIP-G text encoder"]
    with pytest.raises(BadModelFile, match="needs a CLIP-G text encoder"):
        flow_backend.txt2img(_request(checkpoint="sd35-tiny", cfg_scale=4.0, forge_additional_modules=[names["clip_l"]]))
    # CLIP-G given first: told from CLIP-L by its width, not by its place in the list or its name
    full = flow_backend.txt2img(_request(checkpoint="sd35-tiny", cfg_scale=4.0, forge_additional_modules=[
        names["clip_g"], names["t5xxl"], names["clip_l"]])).images[0]
    folder = flow_backend.txt2img(_request(checkpoint="tiny-sd3", cfg_scale=4.0)).images[0]
    assert np.abs(_pixels(full) - _pixels(folder)).max() <= 1
    no_t5 = flow_backend.txt2img(_request(checkpoint="sd35-tiny", cfg_scale=4.0, forge_additional_modules=[
        names["clip_l"], names["clip_g"]])).images[0]  # T5 is optional for SD3
    assert not np.array_equal(_pixels(no_t5), _pixels(full))


@pytest.fixture(scope="module")
def sd3_pipe(tmp_path_factory):
    from diffusers import StableDiffusion3Pipeline

    folder = tiny_flow_models.make_tiny_sd3(tmp_path_factory.mktemp("sd3-pipe") / "sd3")
    return StableDiffusion3Pipeline.from_pretrained(str(folder), local_files_only=True)


def test_emphasis_weights_sd3s_clip_part_and_t5_reads_the_plain_words(sd3_pipe):
    from modules.generation.prompt_embeds import encode_prompts

    plain = encode_prompts(sd3_pipe, ["a red circle"], [""])
    weighted = encode_prompts(sd3_pipe, ["a (red:1.6) circle"], [""])
    clip_tokens = 77  # one CLIP chunk, then T5's 256 tokens
    assert not torch.equal(plain["prompt_embeds"][:, :clip_tokens], weighted["prompt_embeds"][:, :clip_tokens])
    assert torch.equal(plain["prompt_embeds"][:, clip_tokens:], weighted["prompt_embeds"][:, clip_tokens:])
    # without emphasis, the pipeline's own embedding
    own = sd3_pipe.encode_prompt("a red circle", "a red circle", "a red circle", do_classifier_free_guidance=False)
    assert torch.allclose(own[0], plain["prompt_embeds"], atol=1e-5)
    assert torch.allclose(own[2], plain["pooled_prompt_embeds"], atol=1e-6)


@pytest.mark.parametrize("name, family", [("tiny-sd3", "sd3"), ("tiny-sd3-no-t5", "sd3"), ("tiny-flux-dev", "flux"),
                                          ("tiny-flux-schnell", "flux_schnell"), ("tiny-sd3-whole.safetensors", "sd3"),
                                          ("tiny-flux-whole.safetensors", "flux")])
def test_each_tiny_model_is_recognised_by_exactly_one_family(flow_backend, name, family):
    from modules.models import detect, families
    from modules.models.safetensors_header import read_header

    path = flow_backend.config.models_dir / "Stable-diffusion" / name
    if path.is_dir():
        facts = detect.config_facts(path)
        assert [f.name for f in families.FAMILIES if f.recognises_config(facts)] == [family]
    else:
        shapes = {k: v["shape"] for k, v in read_header(path)[0].items()}
        assert [f.name for f in families.FAMILIES if f.recognises_header(shapes)] == [family]
