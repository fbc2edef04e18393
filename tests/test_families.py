"""Model families (modules/models/families): each recognises its own models and no other's, and a
new family is picked up everywhere by registering it, with no other file touched."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modules.errors import BadModelFile
from modules.generation import preview
from modules.models import detect, families, loader, vae_files
from modules.models.families import ConfigFacts, Family, LatentFormat, TextEncoderLayout
from modules.models.hashing import HashCache
from modules.models.registry import Registry
from modules.models.safetensors_header import read_header
from tests import tiny_models

# fixture name -> (builder, its options, the family it is)
FIXTURES = {
    "sd15": (tiny_models.make_tiny_sd15, {}, "sd1"),
    "sd15-inpainting": (tiny_models.make_tiny_sd15, {"inpainting": True}, "sd1"),
    "sd2": (tiny_models.make_tiny_sd2, {}, "sd2"),
    "sdxl": (tiny_models.make_tiny_sdxl, {}, "sdxl"),
    "sdxl-refiner": (tiny_models.make_tiny_sdxl, {"refiner": True}, "sdxl_refiner"),
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Each tiny checkpoint as a diffusers folder and as an original-layout single file."""
    root = tmp_path_factory.mktemp("families")
    built = {}
    for name, (make, options, _) in FIXTURES.items():
        folder = make(root / name, **options)
        built[name] = (folder, tiny_models.make_single_file(folder, root / f"{name}.safetensors", sidecar=False))
    return built


def _shapes(path: Path) -> dict[str, list[int]]:
    return {name: info["shape"] for name, info in read_header(path)[0].items()}


@pytest.mark.parametrize("name", FIXTURES)
def test_each_family_recognises_its_single_files_and_no_others(zoo, name):
    shapes = _shapes(zoo[name][1])
    assert [f.name for f in families.FAMILIES if f.recognises_header(shapes)] == [FIXTURES[name][2]]
    architecture = detect.detect_from_keys(zoo[name][1], shapes)
    assert architecture.family == FIXTURES[name][2]
    assert architecture.inpainting == (name == "sd15-inpainting")


@pytest.mark.parametrize("name", FIXTURES)
def test_each_family_recognises_its_diffusers_folders_and_no_others(zoo, name):
    facts = detect.config_facts(zoo[name][0])
    assert [f.name for f in families.FAMILIES if f.recognises_config(facts)] == [FIXTURES[name][2]]
    assert detect.detect_diffusers_folder(zoo[name][0]).inpainting == (name == "sd15-inpainting")


@pytest.mark.parametrize("name", ["sd15", "sd2", "sdxl", "sdxl-refiner"])
def test_a_loaded_pipeline_knows_its_family(zoo, name):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(zoo[name][0]), local_files_only=True)
    assert families.family_of(pipe).name == FIXTURES[name][2]


def test_the_refiner_and_inpainting_models_are_refused_for_txt2img_with_the_reason(zoo, tmp_path):
    registry = Registry([tmp_path], HashCache(tmp_path / "hashes.json"), extra_paths=[
        zoo["sdxl-refiner"][1], zoo["sd15-inpainting"][1], zoo["sd2"][1]])
    found = {c.path.stem: c for c in registry.scan()}
    with pytest.raises(BadModelFile, match="only refines images; pick an SDXL base model"):
        loader.pipeline_class(found["sdxl-refiner"])
    with pytest.raises(BadModelFile, match="inpainting checkpoints are for inpainting"):
        loader.pipeline_class(found["sd15-inpainting"])
    assert loader.pipeline_class(found["sdxl-refiner"], "img2img").__name__ == "StableDiffusionXLImg2ImgPipeline"
    assert loader.pipeline_class(found["sd2"]).__name__ == "StableDiffusionPipeline"


def test_sd2_single_files_default_to_the_768_v_variant(zoo, tmp_path):
    registry = Registry([tmp_path], HashCache(tmp_path / "hashes.json"), extra_paths=[zoo["sd2"][1]])
    (sd2,) = registry.scan()
    assert sd2.native_size == 768 and sd2.text_encoder_layers == 23  # no config beside it
    family = families.by_name("sd2")
    assert family.scheduler_config({})["prediction_type"] == "v_prediction"
    assert family.scheduler_config({"prediction_type": "epsilon"})["prediction_type"] == "epsilon"  # 512-base


# ---------------------------------------------------------------- the latent format of VAE files


def _vae_file(path: Path, metadata: dict | None = None) -> Path:
    """The tiny SD VAE in the original layout; SD 1.x's and SDXL's VAEs have the same shapes."""
    from tests.convert_to_single_file import vae_to_original

    torch.manual_seed(3)
    vae = tiny_models._tiny_vae(scaling_factor=0.18215)
    save_file({k: v.contiguous() for k, v in vae_to_original(vae.state_dict()).items()}, str(path), metadata)
    return path


def test_a_vae_files_name_does_not_set_its_scaling_factor(tmp_path):
    assert vae_files.load_vae_file(_vae_file(tmp_path / "my-xl-vae.safetensors")).config.scaling_factor == 0.18215


def test_a_vae_gets_the_latent_format_of_the_family_it_is_paired_with(tmp_path, zoo):
    sdxl = families.by_name("sdxl")
    plain = _vae_file(tmp_path / "plain.safetensors")
    assert vae_files.load_vae_file(plain, family=sdxl).config.scaling_factor == 0.13025  # used with an SDXL model
    spec = _vae_file(tmp_path / "vae.safetensors", {"modelspec.architecture": "stable-diffusion-xl-v1-base/vae"})
    assert vae_files.load_vae_file(spec).config.scaling_factor == 0.13025  # its metadata says SDXL
    inside_sdxl = tmp_path / "checkpoint-as-vae.safetensors"
    inside_sdxl.write_bytes(zoo["sdxl"][1].read_bytes())  # the VAE inside a full SDXL checkpoint
    assert vae_files.load_vae_file(inside_sdxl).config.scaling_factor == 0.13025
    config = tmp_path / "plain.json"
    config.write_text(json.dumps({"scaling_factor": 0.5}))  # a config beside the file wins over all
    assert vae_files.load_vae_file(plain, family=sdxl).config.scaling_factor == 0.5


# ---------------------------------------------------------------- a new family


def _fake_family() -> Family:
    """A transformer family as a newer one would add: 32-channel latents (no other family's) with a shift."""
    def recognises_header(shapes) -> bool:
        return "model.diffusion_model.x_embedder.proj.weight" in shapes

    def recognises_config(facts: ConfigFacts) -> bool:
        return facts.pipeline == "AuraFlowPipeline" and facts.has("transformer")

    return Family(
        name="fake3", label="Fake 3", native_size=1024,
        pipelines={"txt2img": "AuraFlowPipeline"},
        components=("transformer", "vae"),
        latent=LatentFormat(channels=32, scaling_factor=1.25, shift_factor=0.0625,
                            preview_rgb=tuple((0.1 * (i % 3), 0.05, -0.02) for i in range(32))),
        text=TextEncoderLayout(encoders=(("tokenizer", "text_encoder"),), layers_without_config=7),
        recognises_header=recognises_header,
        recognises_config=recognises_config,
        denoiser="transformer",
    )


@pytest.fixture
def fake_family(monkeypatch):
    monkeypatch.setattr(families, "FAMILIES", list(families.FAMILIES))  # the registration ends with the test
    family = _fake_family()
    families.register(family)
    return family


def _fake_single_file(path: Path) -> Path:
    save_file({"model.diffusion_model.x_embedder.proj.weight": torch.zeros(8, 16, 2, 2),
               "first_stage_model.encoder.conv_in.weight": torch.zeros(8, 3, 3, 3)}, str(path))
    return path


def _fake_folder(folder: Path) -> Path:
    for component, config in (("transformer", {"sample_size": 128}), ("vae", {"block_out_channels": [1, 2, 3, 4]})):
        (folder / component).mkdir(parents=True)
        (folder / component / "config.json").write_text(json.dumps(config))
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "AuraFlowPipeline",
        "transformer": ["diffusers", "AuraFlowTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]}))
    return folder


def test_an_unknown_family_is_not_a_checkpoint(tmp_path):
    path = _fake_single_file(tmp_path / "new.safetensors")
    with pytest.raises(BadModelFile, match="supported"):
        detect.detect_from_keys(path, _shapes(path))
    registry = Registry([tmp_path], HashCache(tmp_path / "hashes.json"))
    assert not registry.scan()[0].usable


def test_a_registered_family_is_picked_up_by_detection_loading_and_the_checkpoint_list(tmp_path, fake_family):
    single = _fake_single_file(tmp_path / "new.safetensors")
    folder = _fake_folder(tmp_path / "new-folder")
    assert detect.detect_from_keys(single, _shapes(single)).family == "fake3"
    assert [f.name for f in families.FAMILIES if f.recognises_header(_shapes(single))] == ["fake3"]
    assert families.recognise_config(detect.config_facts(folder)).name == "fake3"

    registry = Registry([tmp_path], HashCache(tmp_path / "hashes.json"))
    found = {c.name: c for c in registry.scan()}
    for name in ("new.safetensors", "new-folder"):
        info = found[name]
        assert info.usable, info.error
        assert info.architecture.label == "Fake 3"
        assert info.text_encoder_layers == 7
        assert loader.pipeline_class(info).__name__ == "AuraFlowPipeline"
    assert found["new.safetensors"].native_size == 1024  # the family's
    assert found["new-folder"].native_size == 128 * 8  # from its transformer's and VAE's configs


def test_a_vae_file_gets_the_latent_format_of_the_only_family_with_its_channels(tmp_path, fake_family):
    state = vae_files.read_state_dict(_vae_file(tmp_path / "vae.safetensors"))
    wide = dict(state)
    wide["encoder.conv_out.weight"] = torch.zeros(64, *state["encoder.conv_out.weight"].shape[1:])
    config = vae_files.infer_config(wide)
    assert config["latent_channels"] == 32
    assert (config["scaling_factor"], config["shift_factor"]) == (1.25, 0.0625)
    assert vae_files.infer_config(state)["scaling_factor"] == 0.18215  # 4 channels: SD 1.x's, first of those


def test_the_preview_uses_the_familys_latent_colours(fake_family):
    class NoVae:  # Approx cheap never touches the VAE: the colours come from the family alone
        pass

    torch.manual_seed(0)
    latents = torch.randn(1, 4, 64, 64)
    cheap = preview.Previewer(preview.APPROX_CHEAP)
    sd1, sdxl = (cheap.image(NoVae(), latents, families.by_name(n), (512, 512)) for n in ("sd1", "sdxl"))
    assert sd1.size == (512, 512) and sd1.tobytes() != sdxl.tobytes()
    assert cheap.image(NoVae(), torch.randn(1, 32, 64, 64), fake_family, (512, 512)).size == (512, 512)
    assert cheap.image(NoVae(), torch.randn(1, 32, 64, 64), families.by_name("sd1"), (512, 512)) is None
    no_colours = replace(fake_family, latent=replace(fake_family.latent, preview_rgb=()))
    assert cheap.image(NoVae(), torch.randn(1, 32, 64, 64), no_colours, (512, 512)) is None


def test_family_names_are_unique():
    names = [f.name for f in families.FAMILIES]
    assert len(names) == len(set(names))
    with pytest.raises(ValueError, match="already registered"):
        families.register(replace(families.by_name("sd1")))


# Tensor names and shapes of the released SDXL 1.0 files (sd_xl_base_1.0 / sd_xl_refiner_1.0.safetensors), a few
# of each: the refiner has no conditioner.embedders.0.transformer (CLIP-L), only OpenCLIP-G in slot 0, and a
# UNet of 384 model channels (the base: 320).
SDXL_REFINER_HEADER = {
    "model.diffusion_model.input_blocks.0.0.weight": [384, 4, 3, 3],
    "model.diffusion_model.label_emb.0.0.weight": [1536, 2560],
    "conditioner.embedders.0.model.token_embedding.weight": [49408, 1280],
    "conditioner.embedders.0.model.text_projection": [1280, 1280],
    "conditioner.embedders.0.model.transformer.resblocks.31.attn.in_proj_weight": [3840, 1280],
    "first_stage_model.encoder.conv_in.weight": [128, 3, 3, 3],
}
SDXL_BASE_HEADER = {
    "model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
    "model.diffusion_model.label_emb.0.0.weight": [1280, 2816],
    "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": [49408, 768],
    "conditioner.embedders.1.model.token_embedding.weight": [49408, 1280],
    "conditioner.embedders.1.model.text_projection": [1280, 1280],
    "first_stage_model.encoder.conv_in.weight": [128, 3, 3, 3],
}


def test_the_released_sdxl_base_and_refiner_headers_are_told_apart():
    from modules.models import families

    assert families.recognise_header(SDXL_REFINER_HEADER).name == "sdxl_refiner"
    assert families.recognise_header(SDXL_BASE_HEADER).name == "sdxl"
    assert families.by_name("sdxl_refiner").header_problem(SDXL_REFINER_HEADER) is None


# ---------------------------------------------------------------- SD 3/3.5 and FLUX.1 as published
# A few tensors (names and shapes) of each published file, as diffusers' single-file key maps and the model
# cards give them; no weights are read or downloaded.


def _sd3_transformer(prefix: str, hidden: int, depth: int, positions: int) -> dict[str, list[int]]:
    shapes = {prefix + "x_embedder.proj.weight": [hidden, 16, 2, 2], prefix + "pos_embed": [1, positions, hidden],
              prefix + "context_embedder.weight": [hidden, 4096], prefix + "y_embedder.mlp.0.weight": [hidden, 2048],
              prefix + "final_layer.linear.weight": [64, hidden]}
    for i in range(depth):
        shapes[f"{prefix}joint_blocks.{i}.context_block.adaLN_modulation.1.bias"] = [(2 if i == depth - 1 else 6) * hidden]
        shapes[f"{prefix}joint_blocks.{i}.x_block.mlp.fc1.weight"] = [4 * hidden, hidden]
    return shapes


def _flux_transformer(prefix: str, dev: bool, image_in: int = 64) -> dict[str, list[int]]:
    shapes = {prefix + "img_in.weight": [3072, image_in], prefix + "txt_in.weight": [3072, 4096],
              prefix + "vector_in.in_layer.weight": [3072, 768], prefix + "time_in.in_layer.weight": [3072, 256],
              prefix + "double_blocks.0.img_attn.norm.key_norm.scale": [128],
              prefix + "double_blocks.18.img_attn.qkv.weight": [9216, 3072],
              prefix + "single_blocks.37.linear1.weight": [21504, 3072],
              prefix + "final_layer.linear.weight": [64, 3072]}
    if dev:
        shapes[prefix + "guidance_in.in_layer.weight"] = [3072, 256]
    return shapes


def _zimage_transformer(prefix: str, dim: int = 3840, caption: int = 2560, modulation: str = "0",
                        layers: int = 30) -> dict[str, list[int]]:
    """Z-Image Turbo's (ComfyUI's z_image_turbo_bf16): diffusers' convert_z_image_transformer_checkpoint_to_diffusers
    names, the shapes of Tongyi-MAI/Z-Image-Turbo's transformer config (dim 3840, 30 layers, 30 heads of 128,
    Qwen3-4B captions of 2560). `modulation` "1" and dim 2304 / caption 2304 are Lumina 2's."""
    return {prefix + "x_pad_token": [1, dim], prefix + "cap_pad_token": [1, dim],
            prefix + "x_embedder.weight": [dim, 64],
            prefix + "cap_embedder.0.weight": [caption], prefix + "cap_embedder.1.weight": [dim, caption],
            prefix + "t_embedder.mlp.0.weight": [1024, 256], prefix + "final_layer.linear.weight": [64, dim],
            prefix + f"layers.0.adaLN_modulation.{modulation}.weight": [4 * dim, 256],
            prefix + f"layers.{layers - 1}.attention.qkv.weight": [3 * dim, dim],
            prefix + f"layers.{layers - 1}.attention.q_norm.weight": [128],
            prefix + "layers.0.feed_forward.w1.weight": [10240, dim],
            prefix + "noise_refiner.1.attention.qkv.weight": [3 * dim, dim],
            prefix + "context_refiner.1.attention.out.weight": [dim, dim]}


VAE_16 = {"first_stage_model.encoder.conv_out.weight": [32, 512, 3, 3],
          "first_stage_model.decoder.conv_in.weight": [512, 16, 3, 3]}
CLIPS = {"text_encoders.clip_l.transformer.text_model.embeddings.position_embedding.weight": [77, 768],
         "text_encoders.clip_g.transformer.text_model.embeddings.position_embedding.weight": [77, 1280]}
T5XXL = {"text_encoders.t5xxl.transformer.shared.weight": [32128, 4096],
         "text_encoders.t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q.weight": [4096, 4096]}

PUBLISHED = {
    # name: (shapes, family, usable on its own)
    "sd3_medium_incl_clips_t5xxlfp8.safetensors": (
        {**_sd3_transformer("model.diffusion_model.", 1536, 24, 36864), **VAE_16, **CLIPS, **T5XXL}, "sd3", True),
    "sd3_medium_incl_clips.safetensors": (
        {**_sd3_transformer("model.diffusion_model.", 1536, 24, 36864), **VAE_16, **CLIPS}, "sd3", True),
    "sd3.5_medium.safetensors": ({**_sd3_transformer("model.diffusion_model.", 1536, 24, 147456), **VAE_16},
                                 "sd3", False),
    "sd3.5_large.safetensors": ({**_sd3_transformer("model.diffusion_model.", 2432, 38, 36864), **VAE_16},
                                "sd3", False),
    "sd3.5_large_turbo.safetensors": ({**_sd3_transformer("model.diffusion_model.", 2432, 38, 36864), **VAE_16},
                                      "sd3", False),
    "flux1-dev.safetensors": (_flux_transformer("", dev=True), "flux", False),
    "flux1-schnell.safetensors": (_flux_transformer("", dev=False), "flux_schnell", False),
    "flux1-dev-fp8.safetensors (checkpoint)": (
        {**_flux_transformer("model.diffusion_model.", dev=True), "vae.decoder.conv_in.weight": [512, 16, 3, 3],
         "text_encoders.clip_l.transformer.text_model.embeddings.position_embedding.weight": [77, 768], **T5XXL},
        "flux", True),
    "z_image_turbo_bf16.safetensors": (_zimage_transformer(""), "zimage", False),
    "zImageTurboAIO.safetensors (checkpoint)": (
        {**_zimage_transformer("model.diffusion_model."), "vae.decoder.conv_in.weight": [512, 16, 3, 3],
         "text_encoders.qwen3_4b.transformer.model.embed_tokens.weight": [151936, 2560],
         "text_encoders.qwen3_4b.transformer.model.layers.35.self_attn.q_norm.weight": [128]}, "zimage", True),
}


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_sd3_and_flux_files_are_told_apart_by_their_tensors(name, tmp_path):
    shapes, family, complete = PUBLISHED[name]
    assert [f.name for f in families.FAMILIES if f.recognises_header(shapes)] == [family]
    architecture = detect.detect_from_keys(tmp_path / name, shapes)
    assert architecture.family == family
    assert (architecture.missing_labels() == []) == complete  # else it needs component files


def test_what_a_published_file_lacks_is_named():
    large = detect.detect_from_keys(Path("sd3.5_large.safetensors"), PUBLISHED["sd3.5_large.safetensors"][0])
    assert large.missing_labels() == ["CLIP-L text encoder", "CLIP-G text encoder"]  # T5 is optional
    assert large.missing == ("text_encoder", "text_encoder_2", "text_encoder_3")  # ... and may come from a file
    flux = detect.detect_from_keys(Path("flux1-dev.safetensors"), PUBLISHED["flux1-dev.safetensors"][0])
    assert flux.missing_labels() == ["VAE", "CLIP-L text encoder", "T5-XXL text encoder"]


def test_a_z_image_file_lacks_its_vae_and_qwen3_and_lumina_2_is_not_taken_for_it(tmp_path):
    turbo = detect.detect_from_keys(Path("z_image_turbo_bf16.safetensors"),
                                    PUBLISHED["z_image_turbo_bf16.safetensors"][0])
    assert turbo.missing_labels() == ["VAE", "Qwen3 text encoder"]
    lumina2 = _zimage_transformer("", dim=2304, caption=2304, modulation="1", layers=26)  # its SiLU-first modulation
    assert families.recognise_header(lumina2) is None
    wrong = {**_zimage_transformer(""), "x_embedder.weight": [3840, 128]}
    with pytest.raises(BadModelFile, match="Z-Image transformer without a x_embedder.weight of 64 input features"):
        detect.detect_from_keys(tmp_path / "z-image-edit.safetensors", wrong)


def test_flux_fill_and_depth_are_refused_by_name(tmp_path):
    fill = {**_flux_transformer("model.diffusion_model.", dev=True, image_in=384), **VAE_16}
    with pytest.raises(BadModelFile, match="FLUX.1 Fill, Depth .* not supported"):
        detect.detect_from_keys(tmp_path / "flux1-fill-dev.safetensors", fill)


def test_16_channel_latent_formats_and_previews():
    for name, scaling, shift in (("sd3", 1.5305, 0.0609), ("flux", 0.3611, 0.1159), ("zimage", 0.3611, 0.1159)):
        latent = families.by_name(name).latent
        assert (latent.channels, latent.scaling_factor, latent.shift_factor) == (16, scaling, shift)
        assert len(latent.preview_rgb) == 16

    class NoVae:
        pass

    torch.manual_seed(0)
    image = preview.Previewer(preview.APPROX_CHEAP).image(NoVae(), torch.zeros(1, 16, 64, 64), families.by_name("flux"),
                                                          (512, 512))
    # A zero latent shows the bias alone: ComfyUI's (-0.0329, -0.0718, -0.0851) as colours
    assert image.getpixel((0, 0)) == tuple(round((b + 1) * 127.5) for b in (-0.0329, -0.0718, -0.0851))
