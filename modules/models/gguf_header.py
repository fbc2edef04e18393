"""Read and check a GGUF file's header (tensor names, shapes, quantisation types) without trusting it.

GGUF-quantised transformers (city96's flux1-dev-Q8_0.gguf, sd3.5_large-Q4_0.gguf, as people run them in
ComfyUI and Forge) are transformer-only files: detection needs their tensor names and shapes, as a
.safetensors header gives them. Every count, length and offset is bounded before anything is read or
allocated, and every tensor must lie inside the file with the byte length its shape and type say; a file
that breaks any rule is refused naming the file. Nothing in the file is executed; its metadata is data.

Format (llama.cpp's gguf.md, versions 2 and 3): "GGUF", version, tensor count, key/value count, the
key/values, the tensor infos (name, dims innermost first, type, offset), padding to the alignment, data."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from modules.errors import BadModelFile

MAGIC = b"GGUF"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # as for .safetensors headers: anything bigger is corrupt or hostile
MAX_TENSORS = 100_000
MAX_KEYS = 100_000
MAX_STRING = 1024 * 1024
MAX_DIMS = 4  # GGML_MAX_DIMS
DEFAULT_ALIGNMENT = 32

# ggml's types: name, elements per block, bytes per block (gguf.constants.GGML_QUANT_SIZES, as data).
TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 30: ("BF16", 1, 2),
}
# What diffusers 0.42's GGUF loader dequantises (quantizers/gguf/utils.py; checked in tests/test_compat.py).
LOADABLE = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")

# key/value types: struct format of a scalar, or "string" / "array"
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class GgufTensor:
    shape: list[int]  # torch order (outermost first): a [out, in] Linear weight as torch holds it
    type_name: str  # "Q8_0", "BF16", "F32" ...
    offset: int  # from the start of the data section
    nbytes: int


@dataclass
class GgufHeader:
    version: int
    tensors: dict[str, GgufTensor]
    metadata: dict[str, object] = field(default_factory=dict)  # scalars and strings; arrays as their length
    data_start: int = 0

    def shapes(self) -> dict[str, list[int]]:
        return {name: t.shape for name, t in self.tensors.items()}

    def type_bytes(self) -> dict[str, int]:
        """Bytes per storage type ("Q8_0": 1234, "F32": 56), most first."""
        totals: dict[str, int] = {}
        for t in self.tensors.values():
            totals[t.type_name] = totals.get(t.type_name, 0) + t.nbytes
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def main_type(self) -> str:
        """What the file is called by: its quantisation with the most bytes ("Q8_0"; files keep their small
        layers in BF16/F32), or its float type when nothing is quantised."""
        totals = self.type_bytes()
        quantised = [name for name in totals if name not in ("F32", "F16", "BF16")]
        return (quantised or list(totals) or ["F32"])[0]


class _Reader:
    """Reads the header part of the file, refusing to go past MAX_HEADER_BYTES or the end of the file."""

    def __init__(self, path: Path, f, file_size: int):
        self.path, self.f, self.file_size, self.pos = path, f, file_size, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.file_size:
            raise BadModelFile(self.path, "GGUF header runs past the end of the file (truncated download?)")
        if self.pos + n > MAX_HEADER_BYTES:
            raise BadModelFile(self.path, f"GGUF header is over {MAX_HEADER_BYTES // 2**20} MB: corrupt file")
        data = self.f.read(n)
        if len(data) != n:
            raise BadModelFile(self.path, "GGUF header runs past the end of the file (truncated download?)")
        self.pos += n
        return data

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self, what: str) -> str:
        length = self.unpack("<Q")
        if length > MAX_STRING:
            raise BadModelFile(self.path, f"GGUF {what} claims {length} bytes: corrupt file")
        try:
            return self.take(length).decode("utf8")
        except UnicodeDecodeError:
            raise BadModelFile(self.path, f"GGUF {what} is not UTF-8: corrupt file") from None

    def value(self, kind: int, key: str, depth: int = 0):
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string(f"value of {key!r}")
        if kind == _ARRAY and depth == 0:
            element, count = self.unpack("<I"), self.unpack("<Q")
            if element in _SCALARS:  # skipped, not kept: a tokenizer's scores may be long
                self.take(count * struct.calcsize(_SCALARS[element]))
            elif element == _STRING:
                if count * 8 > self.file_size - self.pos:  # each string takes 8 bytes at least
                    raise BadModelFile(self.path, "GGUF header runs past the end of the file (truncated download?)")
                for _ in range(count):
                    self.string(f"array {key!r}")
            else:
                raise BadModelFile(self.path, f"GGUF key {key!r} is an array of unknown type {element}")
            return count
        raise BadModelFile(self.path, f"GGUF key {key!r} has unknown value type {kind}")


def read_header(path: str | Path) -> GgufHeader:
    """The checked header of a GGUF file; BadModelFile naming the file for anything wrong with it."""
    path = Path(path)
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as f:
            return _read(path, f, file_size)
    except OSError as e:
        raise BadModelFile(path, f"cannot read file: {e.strerror or e}") from None


def _read(path: Path, f, file_size: int) -> GgufHeader:
    r = _Reader(path, f, file_size)
    if file_size < 24 or r.take(4) != MAGIC:
        raise BadModelFile(path, "is not a GGUF file (no GGUF magic at its start), or is truncated")
    version = r.unpack("<I")
    if version not in (2, 3):
        raise BadModelFile(path, f"GGUF version {version} is not supported (versions 2 and 3 are)")
    tensor_count, key_count = r.unpack("<Q"), r.unpack("<Q")
    if tensor_count > MAX_TENSORS or key_count > MAX_KEYS:
        raise BadModelFile(path, f"GGUF header claims {tensor_count} tensors and {key_count} keys: corrupt file")
    metadata: dict[str, object] = {}
    for _ in range(key_count):
        key = r.string("key")
        metadata[key] = r.value(r.unpack("<I"), key)
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or not 1 <= alignment <= 1 << 20 \
            or alignment & (alignment - 1):
        raise BadModelFile(path, f"GGUF general.alignment {alignment!r} is not a power of two")
    infos = []
    for _ in range(tensor_count):
        name = r.string("tensor name")
        dims = r.unpack("<I")
        if not 1 <= dims <= MAX_DIMS:
            raise BadModelFile(path, f"GGUF tensor {name!r} has {dims} dimensions (1 to {MAX_DIMS} allowed)")
        ne = [r.unpack("<Q") for _ in range(dims)]
        infos.append((name, ne, r.unpack("<I"), r.unpack("<Q")))
    data_start = -(-r.pos // alignment) * alignment
    tensors: dict[str, GgufTensor] = {}
    for name, ne, kind, offset in infos:
        tensors[name] = _checked(path, name, ne, kind, offset, alignment, data_start, file_size)
    if len(tensors) != len(infos):
        raise BadModelFile(path, "GGUF file names a tensor twice: corrupt file")
    return GgufHeader(version, tensors, metadata, data_start)


def _checked(path: Path, name: str, ne: list[int], kind: int, offset: int, alignment: int, data_start: int,
             file_size: int) -> GgufTensor:
    if kind not in TYPES:
        raise BadModelFile(path, f"GGUF tensor {name!r} has unknown type {kind}")
    type_name, block, block_bytes = TYPES[kind]
    if type_name not in LOADABLE:
        raise BadModelFile(path, f"GGUF tensor {name!r} is {type_name}, which cannot be loaded here "
                                 f"(supported: {', '.join(LOADABLE)})")
    count = 1
    for d in ne:
        if d > file_size * 8:  # more elements than bits in the file: no type packs that tight
            raise BadModelFile(path, f"GGUF tensor {name!r} claims dimensions {ne}: corrupt file")
        count *= d
    if ne[0] % block:
        raise BadModelFile(path, f"GGUF tensor {name!r}: its rows of {ne[0]} do not split into {type_name} "
                                 f"blocks of {block}")
    nbytes = count // block * block_bytes
    if offset % alignment:
        raise BadModelFile(path, f"GGUF tensor {name!r} is not aligned to {alignment} bytes: corrupt file")
    if data_start + offset + nbytes > file_size:
        raise BadModelFile(path, f"GGUF tensor {name!r} lies past the end of the file (truncated download?)")
    return GgufTensor(list(reversed(ne)), type_name, offset, nbytes)
