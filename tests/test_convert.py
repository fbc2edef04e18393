"""Diffusers -> original single-file conversion, proven by loading the files back
offline with diffusers' own single-file loader and the sidecar config."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from tests.convert_to_single_file import (
    ConversionError,
    pipeline_to_original_state_dict,
    save_single_file,
    unet_to_original,
    vae_to_original,
)
from tests.tiny_models import (
    COMMON_WORDS,
    make_single_file,
    make_tiny_sd2,
    make_tiny_sd15,
    make_tiny_sdxl,
    make_tiny_tokenizer,
    sidecar_dir,
)

# name -> (builder, kwargs, pipeline class name, diffusers' inferred model type)
KINDS = {
    "sd15": (make_tiny_sd15, {}, "StableDiffusionPipeline", "v1"),
    "sd15-inpainting": (make_tiny_sd15, {"inpainting": True}, "StableDiffusionPipeline", "inpainting"),
    "sd2": (make_tiny_sd2, {}, "StableDiffusionPipeline", "v2"),
    "sdxl": (make_tiny_sdxl, {}, "StableDiffusionXLPipeline", "xl_base"),
    "sdxl-refiner": (make_tiny_sdxl, {"refiner": True}, "StableDiffusionXLImg2ImgPipeline", "xl_refiner"),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Each kind as (diffusers folder, single file with sidecar)."""
    root = tmp_path_factory.mktemp("tiny")
    result = {}
    for name, (builder, kwargs, _, _) in KINDS.items():
        folder = builder(root / name, **kwargs)
        result[name] = (folder, make_single_file(folder, root / f"{name}.safetensors"))
    return result


def _pipeline_class(name: str):
    import diffusers

    return getattr(diffusers, KINDS[name][2])


@pytest.mark.parametrize("name", list(KINDS))
def test_single_file_loads_offline_with_identical_weights(built, name):
    folder, single_file = built[name]
    cls = _pipeline_class(name)
    from_file = cls.from_single_file(str(single_file), config=str(sidecar_dir(single_file)), local_files_only=True)
    from_folder = cls.from_pretrained(str(folder), local_files_only=True)

    assert type(from_file) is type(from_folder)
    modules = 0
    for component, original in from_folder.components.items():
        loaded = getattr(from_file, component)
        if isinstance(original, torch.nn.Module):
            modules += 1
            want, got = original.state_dict(), loaded.state_dict()
            assert got.keys() == want.keys(), component
            for key in want:
                assert torch.equal(got[key], want[key]), f"{component}.{key}"
        elif original is None:
            assert loaded is None, component
        elif hasattr(original, "config"):  # scheduler
            assert dict(loaded.config) == dict(original.config)
        else:  # tokenizer
            assert loaded("a red circle").input_ids == original("a red circle").input_ids
    assert modules >= 3


@pytest.mark.parametrize("name", list(KINDS))
def test_diffusers_detects_the_model_family_from_the_keys(built, name):
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    _, single_file = built[name]
    assert infer_diffusers_model_type(load_file(str(single_file))) == KINDS[name][3]


def _shapes(single_file: Path) -> dict[str, tuple[int, ...]]:
    with safe_open(str(single_file), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def test_original_layout_spot_keys(built):
    sd15 = _shapes(built["sd15"][1])
    assert sd15["model.diffusion_model.input_blocks.0.0.weight"][1] == 4
    assert _shapes(built["sd15-inpainting"][1])["model.diffusion_model.input_blocks.0.0.weight"][1] == 9
    assert sd15["cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"] == (77, 32)
    assert sd15["first_stage_model.encoder.mid.attn_1.q.weight"] == (32, 32, 1, 1)
    assert sd15["first_stage_model.decoder.mid.attn_1.proj_out.weight"] == (32, 32, 1, 1)
    assert "first_stage_model.decoder.up.3.upsample.conv.weight" in sd15
    assert not any(k.startswith(("cond_stage_model.model.", "conditioner.")) for k in sd15)

    sd2 = _shapes(built["sd2"][1])
    assert sd2["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"] == (3 * 1024, 1024)
    assert sd2["cond_stage_model.model.positional_embedding"] == (77, 1024)
    assert sd2["model.diffusion_model.input_blocks.1.1.proj_in.weight"] == (32, 32)  # linear projection
    assert not any(k.startswith("cond_stage_model.transformer.") for k in sd2)

    sdxl = _shapes(built["sdxl"][1])
    # (time embedding, 6 time ids x 8 + pooled text projection)
    assert sdxl["model.diffusion_model.label_emb.0.0.weight"] == (32 * 4, 6 * 8 + 32)
    assert sdxl["conditioner.embedders.1.model.text_projection"] == (64, 32)  # (hidden, projection)
    assert sdxl["conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"] == (64,)
    assert sdxl["conditioner.embedders.0.transformer.text_model.final_layer_norm.weight"] == (32,)
    assert sdxl["model.diffusion_model.input_blocks.3.1.transformer_blocks.1.attn2.to_k.weight"] == (64, 96)

    refiner = _shapes(built["sdxl-refiner"][1])
    assert refiner["conditioner.embedders.0.model.text_projection"] == (64, 32)
    assert not any(k.startswith(("conditioner.embedders.1.", "conditioner.embedders.0.transformer.")) for k in refiner)


def test_text_projection_is_stored_transposed(built):
    from transformers import CLIPTextModelWithProjection

    folder, single_file = built["sdxl"]
    encoder = CLIPTextModelWithProjection.from_pretrained(str(folder / "text_encoder_2"), local_files_only=True)
    with safe_open(str(single_file), "pt") as f:
        stored = f.get_tensor("conditioner.embedders.1.model.text_projection")
    assert torch.equal(stored, encoder.text_projection.weight.detach().t())


def test_sidecar_holds_configs_and_tokenizers_but_no_weights(built):
    folder, single_file = built["sdxl"]
    sidecar = sidecar_dir(single_file)
    assert sidecar == single_file.parent / "sdxl.config"
    names = {p.relative_to(sidecar).as_posix() for p in sidecar.rglob("*") if p.is_file()}
    for needed in ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                   "text_encoder_2/config.json", "scheduler/scheduler_config.json",
                   "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer_2/tokenizer_config.json"):
        assert needed in names
    assert not [n for n in names if n.endswith((".safetensors", ".bin", ".ckpt"))]


def test_no_sidecar_when_not_asked(tmp_path, built):
    folder, _ = built["sd15"]
    out = make_single_file(folder, tmp_path / "plain.safetensors", sidecar=False)
    assert out.is_file() and not sidecar_dir(out).exists()


def test_builders_are_deterministic(tmp_path, built):
    again = make_single_file(make_tiny_sd15(tmp_path / "again"), tmp_path / "again.safetensors", sidecar=False)
    first, second = load_file(str(built["sd15"][1])), load_file(str(again))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_tokenizer_keeps_common_words_whole(tmp_path):
    tokenizer = make_tiny_tokenizer(tmp_path / "tok")
    assert tokenizer.model_max_length == 77
    for word in (w for line in COMMON_WORDS for w in line.split()):
        ids = tokenizer(word).input_ids
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
        assert len(ids) == 3, word
    assert (tmp_path / "tok" / "vocab.json").is_file() and (tmp_path / "tok" / "merges.txt").is_file()


def test_save_single_file_casts_and_refuses_other_suffixes(tmp_path, built):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(built["sd15"][0]), local_files_only=True)
    out = save_single_file(pipe, tmp_path / "half.safetensors", dtype=torch.float16)
    tensors = load_file(str(out))
    assert tensors.keys() == pipeline_to_original_state_dict(pipe).keys()
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float16}
    assert [p.name for p in tmp_path.iterdir()] == ["half.safetensors"]  # nothing half-written
    with pytest.raises(ConversionError, match="safetensors"):
        save_single_file(pipe, tmp_path / "model.ckpt")


def test_fused_attention_is_refused(built):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(built["sd15"][0]), local_files_only=True)
    pipe.fuse_qkv_projections()
    with pytest.raises(ConversionError, match="fused"):
        pipeline_to_original_state_dict(pipe)


# Full-size architectures, built on the meta device (no memory, no weights): the keys
# must be exactly those diffusers' loader reads from real A1111/LDM checkpoints.
FULL_SIZE_UNETS = {
    "sd15": dict(cross_attention_dim=768),
    "sd21": dict(cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True),
    "sdxl": dict(
        block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
        addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
        use_linear_projection=True,
    ),
    "sdxl-refiner": dict(
        block_out_channels=(384, 768, 1536, 1536),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=4, attention_head_dim=(6, 12, 24, 24), cross_attention_dim=1280,
        addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2560,
        use_linear_projection=True,
    ),
}

# Keys known from the real checkpoints (upsamplers sit after the attention, if any).
KNOWN_KEYS = {
    "sd15": {
        "input_blocks.3.0.op.weight": (320, 320, 3, 3),
        "output_blocks.2.1.conv.weight": (1280, 1280, 3, 3),
        "output_blocks.8.2.conv.weight": (640, 640, 3, 3),
        "output_blocks.11.0.skip_connection.weight": (320, 640, 1, 1),
        "middle_block.1.proj_in.weight": (1280, 1280, 1, 1),
    },
    "sd21": {"input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024)},
    "sdxl": {
        "output_blocks.2.2.conv.weight": (1280, 1280, 3, 3),
        "label_emb.0.0.weight": (1280, 2816),
        "input_blocks.8.1.transformer_blocks.9.attn2.to_k.weight": (1280, 2048),
    },
    "sdxl-refiner": {"output_blocks.11.0.skip_connection.weight": (384, 768, 1, 1)},
}


@pytest.mark.parametrize("name", list(FULL_SIZE_UNETS))
def test_full_size_unet_keys_match_the_original_layout(name):
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    with init_empty_weights():
        unet = UNet2DConditionModel(**FULL_SIZE_UNETS[name])
    state = unet.state_dict()
    original = {"model.diffusion_model." + k: v for k, v in unet_to_original(state).items()}
    for key, shape in KNOWN_KEYS[name].items():
        assert tuple(original["model.diffusion_model." + key].shape) == shape, key
    back = convert_ldm_unet_checkpoint(original, dict(unet.config))
    assert back.keys() == state.keys()
    assert all(back[k].shape == state[k].shape for k in state)


def test_full_size_vae_keys_match_the_original_layout():
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    with init_empty_weights():
        vae = AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512), layers_per_block=2,
        )
    state = vae.state_dict()
    original = vae_to_original(state)
    assert tuple(original["decoder.up.0.block.0.nin_shortcut.weight"].shape) == (128, 256, 1, 1)
    assert tuple(original["encoder.mid.attn_1.q.weight"].shape) == (512, 512, 1, 1)
    back = convert_ldm_vae_checkpoint({"first_stage_model." + k: v for k, v in original.items()}, dict(vae.config))
    assert back.keys() == state.keys()
    assert all(back[k].shape == state[k].shape for k in state)
