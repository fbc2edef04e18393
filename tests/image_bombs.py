"""A decompression-bomb PNG for tests: huge in pixels, tiny on disk, built without allocating its pixels."""
from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 13000, height: int = 13000, parameters: str = "a bomb") -> bytes:
    """A black 1-bit greyscale PNG of width×height with a `parameters` text chunk (about 25 KB for 13000²)."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte "none", then the packed pixels
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    text = b"parameters\x00" + parameters.encode("latin-1")
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"tEXt", text) + _chunk(b"IDAT", data)
            + _chunk(b"IEND", b""))
