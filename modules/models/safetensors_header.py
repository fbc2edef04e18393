"""Read and check a .safetensors header without reading (or trusting) any tensor data."""
from __future__ import annotations

import json
import struct
from pathlib import Path

from modules.errors import BadModelFile

# safetensors itself refuses headers over 100 MB; a bigger one is corrupt or hostile.
MAX_HEADER_BYTES = 100 * 1024 * 1024

DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}


def read_header(path: str | Path) -> tuple[dict[str, dict], dict[str, str]]:
    """Return ({tensor name: {"dtype", "shape", "data_offsets"}}, metadata) after checking that
    every tensor lies inside the file and its byte length matches shape × dtype."""
    path = Path(path)
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise BadModelFile(path, "file is too short to be a .safetensors file (truncated?)")
            (header_size,) = struct.unpack("<Q", prefix)
            if header_size > MAX_HEADER_BYTES:
                raise BadModelFile(path, f"header claims {header_size} bytes (over the 100 MB limit): corrupt file")
            if header_size > file_size - 8:
                raise BadModelFile(path, "header runs past the end of the file (truncated download?)")
            raw = f.read(header_size)
    except OSError as e:
        raise BadModelFile(path, f"cannot read file: {e.strerror or e}") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadModelFile(path, "header is not valid JSON: not a .safetensors file, or corrupt") from None
    if not isinstance(header, dict):
        raise BadModelFile(path, "header is not a JSON object: corrupt .safetensors file")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise BadModelFile(path, "__metadata__ is not a JSON object")
    data_size = file_size - 8 - header_size
    for name, info in header.items():
        _check_tensor(path, name, info, data_size)
    return header, {str(k): str(v) for k, v in metadata.items()}


def _check_tensor(path: Path, name: str, info: object, data_size: int) -> None:
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
        raise BadModelFile(path, f"tensor {name!r} has a malformed header entry")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in DTYPE_BYTES:
        raise BadModelFile(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise BadModelFile(path, f"tensor {name!r} has an invalid shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise BadModelFile(path, f"tensor {name!r} has invalid data offsets")
    begin, end = offsets
    if not 0 <= begin <= end:
        raise BadModelFile(path, f"tensor {name!r} has invalid data offsets {offsets}")
    if end > data_size:
        raise BadModelFile(path, f"tensor {name!r} lies past the end of the file (truncated download?)")
    count = 1
    for d in shape:
        count *= d
    if count * DTYPE_BYTES[dtype] != end - begin:
        raise BadModelFile(path, f"tensor {name!r}: shape {shape} × {dtype} does not match its {end - begin} bytes")
