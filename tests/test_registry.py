"""The checkpoint list: detection from headers, A1111 titles, cached hashes, and unusable files with reasons."""
from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save_file

from modules.errors import BadModelFile, ModelNotFound
from modules.models import hashing
from modules.models.hashing import HashCache
from modules.models.registry import Registry
from tests import tiny_models


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """One folder with every architecture as an original-layout single file, plus broken files."""
    root = tmp_path_factory.mktemp("zoo")
    build = tmp_path_factory.mktemp("build")
    for name, make in [("sd15", tiny_models.make_tiny_sd15), ("sd2", tiny_models.make_tiny_sd2),
                       ("sdxl", tiny_models.make_tiny_sdxl)]:
        tiny_models.make_single_file(make(build / name), root / f"{name}.safetensors", sidecar=False)
    tiny_models.make_single_file(tiny_models.make_tiny_sd15(build / "inpaint", inpainting=True),
                                 root / "sd15-inpainting.safetensors", sidecar=False)
    tiny_models.make_single_file(tiny_models.make_tiny_sdxl(build / "refiner", refiner=True),
                                 root / "sdxl-refiner.safetensors", sidecar=False)
    tiny_models.make_tiny_sd15(root / "sd15-folder")
    return root


def scan(folder, tmp_path) -> Registry:
    registry = Registry([folder], HashCache(tmp_path / "hashes.json"))
    registry.scan()
    return registry


def by_name(registry: Registry):
    return {c.name: c for c in registry.checkpoints}


def test_detects_every_architecture_from_the_header(zoo, tmp_path):
    found = by_name(scan(zoo, tmp_path))
    labels = {name: c.architecture.label for name, c in found.items()}
    assert labels == {
        "sd15.safetensors": "SD 1.x", "sd2.safetensors": "SD 2.x", "sdxl.safetensors": "SDXL",
        "sd15-inpainting.safetensors": "SD 1.x inpainting", "sdxl-refiner.safetensors": "SDXL refiner",
        "sd15-folder": "SD 1.x",
    }
    assert all(c.usable for c in found.values())


def test_titles_follow_a1111(zoo, tmp_path):
    found = by_name(scan(zoo, tmp_path))
    sd15 = found["sd15.safetensors"]
    assert sd15.sha256 == hashing._hash_file(zoo / "sd15.safetensors")
    assert sd15.title == f"sd15.safetensors [{sd15.sha256[:10]}]"
    assert sd15.model_name == "sd15"


def test_lookup_by_title_name_hash_or_path(zoo, tmp_path):
    registry = scan(zoo, tmp_path)
    sd15 = by_name(registry)["sd15.safetensors"]
    for wanted in (sd15.title, "sd15.safetensors", "sd15", sd15.shorthash, str(zoo / "sd15.safetensors")):
        assert registry.find(wanted) is sd15
    with pytest.raises(ModelNotFound, match="unknown checkpoint 'nope'"):
        registry.find("nope")


def test_hash_is_computed_once_per_file_version(zoo, tmp_path, monkeypatch):
    scan(zoo, tmp_path)
    calls = []
    original = hashing._hash_file
    monkeypatch.setattr(hashing, "_hash_file", lambda p: calls.append(p) or original(p))
    scan(zoo, tmp_path)  # a new registry, same cache file
    assert calls == []
    target = zoo / "sd15.safetensors"
    target.touch()  # a new mtime: the cached hash no longer applies
    scan(zoo, tmp_path)
    assert calls == [target]


class CodePayload:
    """Unpickling this runs os.system: the classic malicious checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def write_broken_files(folder, marker):
    good = (folder / "good.safetensors")
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3)}, str(good))
    (folder / "random-bytes.safetensors").write_bytes(b"\x13\x00\x00\x00\x00\x00\x00\x00not json at all....")
    data = (folder / "good.safetensors").read_bytes()
    (folder / "truncated.safetensors").write_bytes(data[: len(data) - 100])
    (folder / "huge-header.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{}")
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}).encode()
    (folder / "offsets-past-end.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    header = json.dumps({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}).encode()
    (folder / "shape-mismatch.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    save_file({"encoder.conv_in.weight": torch.zeros(1), "decoder.conv_in.weight": torch.zeros(1)},
              str(folder / "a-vae.safetensors"))
    save_file({"linear.weight": torch.zeros(2, 2)}, str(folder / "not-sd.safetensors"))
    with open(folder / "evil.ckpt", "wb") as f:
        pickle.dump({"state_dict": CodePayload(marker)}, f)
    (folder / "evil-renamed.SAFETENSORS").write_bytes((folder / "evil.ckpt").read_bytes())
    good.unlink()


def test_bad_files_are_listed_unusable_with_a_reason_and_no_code_runs(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    marker = tmp_path / "payload-ran"
    write_broken_files(folder, marker)
    registry = scan(folder, tmp_path)  # must not raise
    reasons = {c.name: c.error for c in registry.checkpoints}
    assert not marker.exists(), "a pickle payload ran during the scan"
    assert all(reasons.values()), reasons
    assert "not valid JSON" in reasons["random-bytes.safetensors"]
    assert "truncated" in reasons["truncated.safetensors"]
    assert "100 MB" in reasons["huge-header.safetensors"]
    assert "past the end" in reasons["offsets-past-end.safetensors"]
    assert "does not match" in reasons["shape-mismatch.safetensors"]
    assert "VAE" in reasons["a-vae.safetensors"]
    assert "not a Stable Diffusion checkpoint" in reasons["not-sd.safetensors"]
    assert "refused" in reasons["evil.ckpt"]
    assert "refused" in reasons["evil-renamed.SAFETENSORS"]
    with pytest.raises(BadModelFile, match="evil.ckpt: refused"):
        registry.find("evil.ckpt")
    assert registry.usable() == []


def test_a_tensor_only_pickle_checkpoint_is_usable(tmp_path):
    """Legacy .ckpt files holding only tensors load with torch's weights-only unpickler."""
    from tests.convert_to_single_file import pipeline_to_original_state_dict
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models.make_tiny_sd15(tmp_path / "src"), local_files_only=True)
    folder = tmp_path / "models"
    folder.mkdir()
    torch.save({"state_dict": pipeline_to_original_state_dict(pipe)}, folder / "legacy.ckpt")
    found = by_name(scan(folder, tmp_path))
    assert found["legacy.ckpt"].usable and found["legacy.ckpt"].architecture.label == "SD 1.x"


def test_native_size_from_config_or_architecture(zoo, tmp_path):
    found = by_name(scan(zoo, tmp_path))
    assert found["sd15-folder"].native_size == 64  # tiny: sample_size 8 × VAE scale 8
    assert found["sd15.safetensors"].native_size == 512  # no config beside it: SD 1.x default
    assert found["sdxl.safetensors"].native_size == 1024
