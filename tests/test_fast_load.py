"""Cold loads of single files (modules/models/fast_load.py): the same pipeline as diffusers'
from_single_file, from one read of only the bytes it needs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from bench import readers
from modules.errors import BadModelFile
from modules.models import parallel_read
from modules.models.fast_load import load_single_file, load_single_file_with_report
from tests.tiny_models import make_single_file, make_tiny_sd2, sidecar_dir

SINGLE_FILES = {"sd15": "tiny-sd15-single.safetensors", "sdxl": "tiny-sdxl-single.safetensors"}


@pytest.fixture(scope="module")
def single_files(models_dir) -> dict[str, Path]:
    return {kind: models_dir / "Stable-diffusion" / name for kind, name in SINGLE_FILES.items()}


@pytest.fixture(scope="module")
def sd2_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sd2")
    return make_single_file(make_tiny_sd2(root / "tiny-sd2"), root / "tiny-sd2.safetensors")


def _reference(path: Path, dtype: torch.dtype, kind: str):
    """What the app loaded before: diffusers' from_single_file with the sidecar config."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if kind == "sdxl":
        return StableDiffusionXLPipeline.from_single_file(
            str(path), config=str(sidecar_dir(path)), local_files_only=True, dtype=dtype)
    return StableDiffusionPipeline.from_single_file(
        str(path), config=str(sidecar_dir(path)), local_files_only=True, dtype=dtype,
        safety_checker=None, requires_safety_checker=False)


def _assert_same_pipeline(got, want) -> None:
    assert type(got) is type(want)
    models = 0
    for name, wanted in want.components.items():
        loaded = getattr(got, name)
        if isinstance(wanted, torch.nn.Module):
            models += 1
            assert not loaded.training, name
            want_state, got_state = dict(wanted.named_parameters()), dict(loaded.named_parameters())
            want_state.update(wanted.named_buffers())  # non-persistent ones too (position_ids)
            got_state.update(loaded.named_buffers())
            assert got_state.keys() == want_state.keys(), name
            for key, value in want_state.items():
                assert got_state[key].dtype == value.dtype, f"{name}.{key}"
                assert torch.equal(got_state[key], value), f"{name}.{key}"
        elif wanted is None:
            assert loaded is None, name
        elif hasattr(wanted, "config"):  # scheduler
            assert dict(loaded.config) == dict(wanted.config), name
        else:  # tokenizer
            assert loaded("a red circle").input_ids == wanted("a red circle").input_ids, name
    assert models >= 3
    assert dict(got.config) == dict(want.config)


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=["fp16", "fp32"])
def test_weights_equal_from_single_file(single_files, kind, dtype):
    path = single_files[kind]
    _assert_same_pipeline(load_single_file(path, sidecar_dir(path), dtype), _reference(path, dtype, kind))


def test_sd2_open_clip_weights_equal_from_single_file(sd2_file):
    _assert_same_pipeline(load_single_file(sd2_file, sidecar_dir(sd2_file), torch.float16),
                          _reference(sd2_file, torch.float16, "sd2"))


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_image_equals_from_single_file(single_files, kind):
    path = single_files[kind]
    images = []
    for pipe in (load_single_file(path, sidecar_dir(path), torch.float32), _reference(path, torch.float32, kind)):
        pipe.set_progress_bar_config(disable=True)
        images.append(pipe("a red circle on a white background", num_inference_steps=2, height=64, width=64,
                           generator=torch.Generator().manual_seed(1234), output_type="np").images[0])
    assert images[0].shape == (64, 64, 3)
    assert np.isfinite(images[0]).all() and images[0].std() > 0
    np.testing.assert_array_equal(images[0], images[1])


def test_every_reader_gives_the_same_weights(single_files):
    path = single_files["sdxl"]
    loads = {reader: load_single_file_with_report(path, sidecar_dir(path), torch.float16,
                                                  readers.READERS.get(reader, reader))
             for reader in ("parallel", "plain", "mmap", "map", "auto")}  # mmap, map: the benchmark's comparisons
    first = loads["parallel"].pipeline
    for reader, load in loads.items():
        assert load.report.bytes_read == loads["parallel"].report.bytes_read, reader
        for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
            want, got = getattr(first, name).state_dict(), getattr(load.pipeline, name).state_dict()
            assert all(torch.equal(got[k], want[k]) for k in want), f"{reader}: {name}"


def test_weights_are_views_of_one_buffer_per_model(single_files):
    """Read once, straight into place: in the file's dtype the parameters are the read buffer."""
    path = single_files["sd15"]
    pipe = load_single_file(path, sidecar_dir(path), torch.float32)  # the tiny files are fp32
    storages = {}
    for name in ("unet", "vae", "text_encoder"):
        storages[name] = {p.untyped_storage().data_ptr() for p in getattr(pipe, name).parameters()}
        assert len(storages[name]) == 1, name
    assert len(set.union(*storages.values())) == 3  # separate buffers: one model can be freed alone


def test_ema_and_unused_tensors_are_not_read(single_files, tmp_path):
    source = single_files["sd15"]
    tensors = load_file(str(source))
    needed = sum(t.numel() * t.element_size() for t in tensors.values())
    with_ema = dict(tensors)
    for key, value in tensors.items():
        if key.startswith("model.diffusion_model."):  # the flattened names real EMA checkpoints use
            with_ema["model_ema." + key.removeprefix("model.").replace(".", "")] = value.clone()
    with_ema["model_ema.num_updates"] = torch.tensor(7)
    with_ema["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    path = tmp_path / "with-ema.safetensors"
    save_file(with_ema, str(path))
    assert path.stat().st_size > needed * 1.5

    load = load_single_file_with_report(path, sidecar_dir(source), torch.float32, "parallel")
    assert load.report.tensors_in_file == len(with_ema)
    assert load.report.tensors_read == len(tensors)
    assert load.report.bytes_read == needed
    assert needed <= load.report.buffer_bytes <= needed + 64  # a few bytes of alignment at most
    _assert_same_pipeline(load.pipeline, _reference(source, torch.float32, "sd15"))


def test_safety_checker_in_the_config_is_not_loaded(single_files, tmp_path):
    """Real SD 1.5 configs name a safety checker; like the app's from_single_file call, no checker."""
    import json
    import shutil

    source = single_files["sd15"]
    config = tmp_path / "with-checker.config"
    shutil.copytree(sidecar_dir(source), config)
    index = json.loads((config / "model_index.json").read_text())
    index.update(safety_checker=["stable_diffusion", "StableDiffusionSafetyChecker"],
                 feature_extractor=["transformers", "CLIPImageProcessor"], requires_safety_checker=True)
    (config / "model_index.json").write_text(json.dumps(index))
    pipe = load_single_file(source, config, torch.float16)
    assert pipe.safety_checker is None and pipe.feature_extractor is None
    assert pipe.config.requires_safety_checker is False


@pytest.mark.parametrize("reader", ["auto", "map"])
def test_truncated_file_is_a_bad_model_file(single_files, tmp_path, reader):
    source = single_files["sd15"]
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(source.read_bytes()[:-1000])
    with pytest.raises(BadModelFile) as caught:
        load_single_file(path, sidecar_dir(source), torch.float16, readers.READERS.get(reader, reader))
    assert caught.value.path == str(path)
    assert "truncated.safetensors" in str(caught.value) and "truncated" in caught.value.reason


def test_missing_unet_weight_is_a_bad_model_file_naming_it(single_files, tmp_path):
    source = single_files["sd15"]
    tensors = load_file(str(source))
    del tensors["model.diffusion_model.out.2.weight"]  # the UNet's final conv
    path = tmp_path / "no-conv-out.safetensors"
    save_file(tensors, str(path))
    with pytest.raises(BadModelFile) as caught:
        load_single_file(path, sidecar_dir(source), torch.float16)
    assert "no-conv-out.safetensors" in str(caught.value)
    assert "unet" in caught.value.reason and "conv_out.weight" in caught.value.reason


def test_wrong_architecture_is_a_bad_model_file(single_files):
    """An SD 1.5 file with the SDXL config: refused before any tensor data is read."""
    with pytest.raises(BadModelFile) as caught:
        load_single_file(single_files["sd15"], sidecar_dir(single_files["sdxl"]), torch.float16)
    assert SINGLE_FILES["sd15"] in str(caught.value)


def test_not_a_safetensors_file(single_files, tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(BadModelFile, match="garbage.safetensors"):
        load_single_file(path, sidecar_dir(single_files["sd15"]), torch.float16)


# ---------------------------------------------------------------- parallel_read


@pytest.mark.parametrize("reader", parallel_read.READERS)
def test_ranges_are_coalesced_aligned_and_read_exactly(tmp_path, reader):
    data = bytes(range(256)) * 64
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    spans = {"a": (0, 100), "b": (100, 164), "c": (203, 403), "d": (1000, 16384)}
    plan = parallel_read.BufferPlan(spans)
    assert [(r.file_offset, r.length) for r in plan.ranges] == [(0, 164), (203, 200), (1000, 15384)]
    assert all(r.buffer_offset % parallel_read.ALIGN == r.file_offset % parallel_read.ALIGN for r in plan.ranges)
    assert plan.nbytes < sum(e - b for b, e in spans.values()) + 3 * parallel_read.ALIGN
    buffer = plan.allocate()
    got = parallel_read.read_into(path, [(plan, buffer)], reader=reader, threads=3, chunk_bytes=1000)
    assert got == sum(e - b for b, e in spans.values())
    for name, (b, e) in spans.items():
        assert plan.view(buffer, name, torch.uint8, [e - b]).numpy().tobytes() == data[b:e], name
    assert plan.view(buffer, "d", torch.int16, [2, -1]).shape == (2, 3846)


def test_mapped_ranges_are_the_file_bytes_and_copy_on_write(tmp_path):
    data = bytes(range(256)) * 64
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    mapped = readers.map_file(path, [(10, 5000), (9000, 16384)])
    assert mapped.numpy().tobytes() == data
    mapped[:4] = 0  # a private mapping: the file itself never changes
    assert path.read_bytes() == data
    with pytest.raises(parallel_read.ShortRead):
        readers.map_file(path, [(0, 20000)])


@pytest.mark.parametrize("reader", parallel_read.READERS)
def test_reading_past_the_end_is_a_short_read(tmp_path, reader):
    path = tmp_path / "short.bin"
    path.write_bytes(b"x" * 100)
    plan = parallel_read.BufferPlan({"a": (50, 150)})
    with pytest.raises(parallel_read.ShortRead):
        parallel_read.read_into(path, [(plan, plan.allocate())], reader=reader)
