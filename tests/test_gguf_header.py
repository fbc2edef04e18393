"""GGUF headers are read without trusting them: every count, length, offset and type is checked before
anything is allocated or read, and a corrupt, truncated or hostile file is refused naming the file."""
from __future__ import annotations

import struct

import pytest

from modules.errors import BadModelFile
from modules.models import gguf_header
from modules.models.registry import Registry
from modules.models.hashing import HashCache
from tests import gguf_fixtures


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf_bytes(tensors=(("img_in.weight", [64, 32], 0, 0),), keys=(), version=3, tensor_count=None,
               key_count=None, data=b"\0" * 8192) -> bytes:
    """A GGUF file by hand: (name, dims innermost first, type, offset) per tensor, (key, type, packed value)."""
    out = b"GGUF" + struct.pack("<I", version)
    out += struct.pack("<QQ", len(tensors) if tensor_count is None else tensor_count,
                       len(keys) if key_count is None else key_count)
    for key, kind, value in keys:
        out += _string(key) + struct.pack("<I", kind) + value
    for name, dims, kind, offset in tensors:
        out += _string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", kind, offset)
    out += b"\0" * (-len(out) % 32)
    return out + data


def test_a_written_file_reads_back_with_names_shapes_and_types(tmp_path):
    import torch

    state = {"double_blocks.0.img_attn.qkv.weight": torch.randn(96, 64), "img_in.weight": torch.randn(32, 64),
             "double_blocks.0.img_attn.qkv.bias": torch.randn(96), "odd.weight": torch.randn(4, 20)}
    path = gguf_fixtures.write_gguf(state, tmp_path / "x.gguf", "Q4_0")
    header = gguf_header.read_header(path)
    assert header.shapes() == {name: list(t.shape) for name, t in state.items()}  # torch order
    types = {name: t.type_name for name, t in header.tensors.items()}
    assert types == {"double_blocks.0.img_attn.qkv.weight": "Q4_0", "img_in.weight": "BF16",
                     "double_blocks.0.img_attn.qkv.bias": "F32", "odd.weight": "F16"}
    assert header.tensors["double_blocks.0.img_attn.qkv.weight"].nbytes == 96 * 64 // 32 * 18
    assert header.main_type() == "Q4_0" and header.metadata["general.architecture"] == "flux"
    assert header.type_bytes()["BF16"] == 32 * 64 * 2


def test_our_types_and_diffusers_loadable_ones_agree():
    from modules import compat

    assert set(gguf_header.LOADABLE) <= set(compat.gguf_loadable_types())


@pytest.mark.parametrize("content, message", [
    (b"", "is not a GGUF file"),
    (b"GGML" + b"\0" * 40, "is not a GGUF file"),
    (gguf_bytes(version=1), "GGUF version 1 is not supported"),
    (gguf_bytes(tensor_count=10**9), "claims 1000000000 tensors"),
    (gguf_bytes(keys=(("k", 8, struct.pack("<Q", 2**40)),)), "claims 1099511627776 bytes"),
    (gguf_bytes(keys=(("k", 9, struct.pack("<IQ", 0, 2**62)),)), "runs past the end of the file"),
    (gguf_bytes(keys=(("k", 77, b""),)), "unknown value type 77"),
    (gguf_bytes(keys=(("general.alignment", 4, struct.pack("<I", 3)),)), "alignment 3 is not a power of two"),
    (gguf_bytes(tensors=(("w", [32, 2, 2, 2, 2], 0, 0),)), "has 5 dimensions"),
    (gguf_bytes(tensors=(("w", [32, 4], 99, 0),)), "unknown type 99"),
    (gguf_bytes(tensors=(("w", [32, 4], 16, 0),)), "unknown type 16"),  # IQ2_XXS
    (gguf_bytes(tensors=(("w", [32, 4], 27, 0),)), "I64, which cannot be loaded"),
    (gguf_bytes(tensors=(("w", [48, 4], 8, 0),)), "rows of 48 do not split into Q8_0 blocks of 32"),
    (gguf_bytes(tensors=(("w", [2**62, 2**62], 0, 0),)), "claims dimensions"),
    (gguf_bytes(tensors=(("w", [64, 64], 0, 4),)), "not aligned"),
    (gguf_bytes(tensors=(("w", [64, 64], 0, 0),), data=b"\0" * 100), "lies past the end of the file"),
    (gguf_bytes(tensors=(("w", [32], 0, 0), ("w", [32], 0, 128))), "names a tensor twice"),
    (gguf_bytes()[:20], "is not a GGUF file"),
])
def test_corrupt_and_hostile_files_are_refused_naming_the_file(tmp_path, content, message):
    path = tmp_path / "hostile.gguf"
    path.write_bytes(content)
    with pytest.raises(BadModelFile, match=message) as refused:
        gguf_header.read_header(path)
    assert "hostile.gguf" in str(refused.value)


def test_a_truncated_download_is_refused(tmp_path):
    import torch

    path = gguf_fixtures.write_gguf({"double_blocks.0.img_attn.qkv.weight": torch.randn(96, 64)}, tmp_path / "x.gguf")
    whole = path.read_bytes()
    for cut in (len(whole) - 1, len(whole) // 2, 40):
        path.write_bytes(whole[:cut])
        with pytest.raises(BadModelFile, match=r"x\.gguf.*(truncated download|past the end)"):
            gguf_header.read_header(path)


def test_the_scan_lists_unusable_gguf_files_with_the_reason(tmp_path):
    import torch

    folder = tmp_path / "unet"
    gguf_fixtures.write_gguf({"model.layers.0.attn_q.weight": torch.randn(32, 32)}, folder / "llama.gguf", arch="llama")
    (folder / "broken.gguf").write_bytes(gguf_bytes(data=b""))
    gguf_fixtures.write_gguf({"conv_in.weight": torch.randn(4, 4, 3, 3)}, folder / "unet-part.gguf")
    registry = Registry([folder], HashCache(tmp_path / "hashes.json"))
    errors = {c.name: c.error for c in registry.scan()}
    assert "GGUF file of no supported family" in errors["llama.gguf"]
    assert "lies past the end of the file" in errors["broken.gguf"]
    assert errors["unet-part.gguf"] is not None and not registry.usable()


def test_a_quantised_tensor_where_no_linear_layer_takes_it_is_refused(tmp_path):
    """A hostile or odd file with a quantised norm or convolution: refused at load, naming the tensor."""
    import torch

    from modules.models import families, gguf_files
    from tests import tiny_flow_models

    flux = tiny_flow_models.make_tiny_flux(tmp_path / "flux")
    parts = tiny_flow_models.flux_file_parts(flux)
    norm = "double_blocks.0.img_attn.norm.key_norm.scale"  # an RMSNorm's scale, in BF16: no layer dequantises it
    path = gguf_fixtures.write_gguf(parts["transformer"], tmp_path / "odd.gguf", forced={norm: "BF16"})
    header = gguf_header.read_header(path)
    assert header.tensors[norm].type_name == "BF16"
    family = families.recognise_header(header.shapes())
    with pytest.raises(BadModelFile, match=r"odd\.gguf.*(attn\.norm_k\.weight is BF16|cannot be loaded)"):
        gguf_files.load_transformer(path, flux, family, torch.float32)
