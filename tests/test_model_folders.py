"""Model folders and files that must not hang or fool a scan: symlink loops, very deep or very large
trees, and safetensors files whose header length happens to start like a pickle."""
from __future__ import annotations

import json
import os
import shutil
import struct
import threading

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from modules.models import folder_walk, pickles
from modules.models.hashing import HashCache
from modules.models.registry import Registry
from modules.models.safetensors_header import read_header
from modules.models.vae_files import VaeFiles
from modules.models.zoo_registry import ZooRegistry
from tests import tiny_models


def _finishes(work, seconds: float = 60):
    """work()'s result, or a test failure (not a hung test run) when it does not end."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not finish in {seconds} s (loops for ever?)"
    return result["value"]


@pytest.fixture(scope="module")
def tiny_single(tmp_path_factory):
    build = tmp_path_factory.mktemp("tiny")
    return tiny_models.make_single_file(tiny_models.make_tiny_sd15(build / "sd15"), build / "sd15.safetensors",
                                        sidecar=False)


def _scan(folder, tmp_path):
    registry = Registry([folder], HashCache(tmp_path / "hashes.json"))
    return {c.name: c for c in _finishes(registry.scan)}


def test_symlinks_to_the_folder_itself_do_not_hang_the_scan(tiny_single, tmp_path):
    sd = tmp_path / "Stable-diffusion"
    (sd / "sub").mkdir(parents=True)
    shutil.copy(tiny_single, sd / "model.safetensors")
    os.symlink(".", sd / "a")
    os.symlink(".", sd / "b")
    os.symlink("..", sd / "sub" / "up")
    os.symlink("self.safetensors", sd / "self.safetensors")  # a link to itself
    found = _scan(sd, tmp_path)
    assert found["model.safetensors"].usable
    assert "Too many levels of symbolic links" in found["self.safetensors"].error
    assert len(found) == 2
    # The other scans of model folders: VAE files, the zoo's own models, folder hashes.
    vae = tmp_path / "VAE"
    vae.mkdir()
    os.symlink(".", vae / "loop")
    shutil.copy(tiny_single, vae / "v.safetensors")
    assert [f.name for f in _finishes(VaeFiles([vae]).scan)] == ["v.safetensors"]
    for sub in ("Latent", "GAN"):
        (tmp_path / sub).mkdir()
        os.symlink("..", tmp_path / sub / "up")
    _finishes(ZooRegistry(tmp_path, HashCache(tmp_path / "zoo-hashes.json")).scan)
    assert _finishes(lambda: folder_walk.files(sd)) == [sd / "model.safetensors"]


def test_a_symlinked_models_folder_is_still_followed(tiny_single, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(tiny_single, shared / "linked.safetensors")
    sd = tmp_path / "Stable-diffusion"
    sd.mkdir()
    os.symlink(shared, sd / "shared")
    assert _scan(sd, tmp_path)["shared/linked.safetensors"].usable


def test_depth_and_count_are_bounded(tiny_single, tmp_path, monkeypatch, caplog):
    sd = tmp_path / "Stable-diffusion"
    deep = sd.joinpath(*[f"d{i}" for i in range(folder_walk.MAX_DEPTH + 2)])
    deep.mkdir(parents=True)
    shutil.copy(tiny_single, sd / "d0" / "shallow.safetensors")
    shutil.copy(tiny_single, deep / "too-deep.safetensors")
    assert list(_scan(sd, tmp_path)) == ["d0/shallow.safetensors"]
    assert "more than 16 folders deep" in caplog.text

    monkeypatch.setattr(folder_walk, "MAX_ENTRIES", 50)
    wide = tmp_path / "wide"
    wide.mkdir()
    for i in range(200):
        (wide / f"f{i:03}.txt").touch()
    assert len(list(folder_walk.walk(wide))) == 50
    assert "stopped scanning" in caplog.text and "after 50 files and folders" in caplog.text


def _with_header_length(tensors: dict, low_byte: int, path) -> int:
    """A valid safetensors file whose header length's first (low) byte is `low_byte`: the JSON header
    padded with spaces, as the format allows. Returns the header length."""
    plain = path.with_suffix(".plain")
    save_file(tensors, str(plain))
    raw = plain.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = raw[8:8 + size].rstrip(b" ")
    length = len(header) + (low_byte - len(header)) % 256
    path.write_bytes(struct.pack("<Q", length) + header + b" " * (length - len(header)) + raw[8 + size:])
    plain.unlink()
    return length


def test_every_header_length_byte_is_read_as_safetensors(tmp_path):
    tensors = {"weight": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    for low_byte in range(256):
        path = tmp_path / f"h{low_byte:02x}.safetensors"
        length = _with_header_length(tensors, low_byte, path)
        assert path.read_bytes()[0] == low_byte == length % 256
        with safe_open(str(path), framework="pt") as f:  # the safetensors library agrees it is valid
            assert torch.equal(f.get_tensor("weight"), tensors["weight"])
        assert pickles.is_safetensors_file(path) and not pickles.is_pickle_file(path), hex(low_byte)
        assert read_header(path)[0]["weight"]["shape"] == [2, 3]


def test_a_checkpoint_whose_header_length_starts_with_0x80_is_listed(tiny_single, tmp_path):
    sd = tmp_path / "Stable-diffusion"
    sd.mkdir()
    _with_header_length(load_file(str(tiny_single)), 0x80, sd / "eighty.safetensors")
    assert (sd / "eighty.safetensors").read_bytes()[0] == 0x80  # the pickle PROTO opcode
    found = _scan(sd, tmp_path)["eighty.safetensors"]
    assert found.usable, found.error
    assert found.architecture.label == "SD 1.x"


@pytest.mark.parametrize("zipped", [True, False], ids=["torch-zip", "legacy-pickle"])
def test_pickles_renamed_to_safetensors_are_still_refused(tmp_path, zipped):
    path = tmp_path / "renamed.safetensors"
    torch.save({"w": torch.zeros(2)}, path, _use_new_zipfile_serialization=zipped)
    assert pickles.is_pickle_file(path) and not pickles.is_safetensors_file(path)
    sd = tmp_path / "Stable-diffusion"
    sd.mkdir()
    shutil.move(path, sd / path.name)
    assert "pickle renamed to .safetensors" in _scan(sd, tmp_path)["renamed.safetensors"].error


def test_json_padding_is_what_the_format_allows(tmp_path):
    """The padded header is still the same JSON (the test above relies on it)."""
    path = tmp_path / "p.safetensors"
    _with_header_length({"x": torch.ones(1)}, 0x00, path)
    (size,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert json.loads(path.read_bytes()[8:8 + size])["x"]["dtype"] == "F32"
