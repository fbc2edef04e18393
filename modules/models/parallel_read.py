"""Chosen byte ranges of a file in host memory: read once into one preallocated buffer.

`BufferPlan` packs the ranges (adjacent ones coalesced into one read) into a single
uint8 tensor; `read_into` fills it with parallel chunked `preadv` calls from a small
thread pool, or with plain sequential reads. Tensors are then zero-copy views of the
buffer (`plan.view(buffer, name)`), so the bytes are read once, straight into place.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

READERS = ("parallel", "plain")

# Each range starts in the buffer at the same offset modulo ALIGN as in the file, so a
# tensor aligned in the file (safetensors aligns them) stays aligned for .view(dtype).
ALIGN = 8
# On the 2-vCPU dev VM (bench/cold_load.py, 2.1 GB file) 2-4 threads × 8-32 MiB chunks
# were all within noise of each other with the page cache warm; with it cold, several
# requests in flight read the virtio disk ~2x faster than one sequential stream (2.2 s vs 4.6 s).
DEFAULT_THREADS = 4
DEFAULT_CHUNK_BYTES = 32 << 20


class ShortRead(OSError):
    """The file ended before a range the header promised (truncated, or changed while read)."""


@dataclass(frozen=True)
class _Range:
    file_offset: int
    length: int
    buffer_offset: int


class BufferPlan:
    """Where each named span `(file_begin, file_end)` lands in one host buffer."""

    def __init__(self, spans: Mapping[str, tuple[int, int]]):
        self.ranges: list[_Range] = []
        self._where: dict[str, tuple[int, int]] = {}  # name -> (buffer offset, length)
        ordered = sorted(spans.items(), key=lambda item: item[1])
        size = 0
        begin = end = None
        members: list[tuple[str, int, int]] = []

        def close_range():
            nonlocal size
            start = size + (begin - size) % ALIGN  # same residue mod ALIGN as in the file
            self.ranges.append(_Range(begin, end - begin, start))
            for name, b, e in members:
                self._where[name] = (start + b - begin, e - b)
            size = start + end - begin

        for name, (b, e) in ordered:
            if begin is not None and b <= end:  # adjacent (or overlapping): one read
                end = max(end, e)
            else:
                if begin is not None:
                    close_range()
                begin, end, members = b, e, []
            members.append((name, b, e))
        if begin is not None:
            close_range()
        self.nbytes = size
        self.bytes_to_read = sum(r.length for r in self.ranges)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def allocate(self) -> torch.Tensor:
        return torch.empty(self.nbytes, dtype=torch.uint8)

    def raw(self, buffer: torch.Tensor, name: str) -> torch.Tensor:
        """The named span's bytes in the buffer (uint8, shared memory)."""
        offset, length = self._where[name]
        return buffer[offset:offset + length]

    def view(self, buffer: torch.Tensor, name: str, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
        """The named span as a tensor of `dtype` and `shape`, sharing the buffer's memory."""
        offset, _ = self._where[name]
        raw = self.raw(buffer, name)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if offset % itemsize:  # misaligned in the file itself: this one tensor costs a copy
            raw = raw.clone()
        return raw.view(dtype).view(shape)


def read_into(path: str | Path, jobs: list[tuple[BufferPlan, torch.Tensor]], reader: str = "parallel",
              threads: int = DEFAULT_THREADS, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Fill each buffer with its plan's ranges of `path`; return the bytes read.

    Raises ShortRead if the file ends early, OSError if it cannot be read."""
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}; expected one of {READERS}")
    pieces: list[tuple[int, memoryview]] = []  # (file offset, destination)
    for plan, buffer in jobs:
        if buffer.numel() != plan.nbytes or buffer.dtype != torch.uint8 or not buffer.is_contiguous():
            raise ValueError("buffer does not match its plan")
        if plan.nbytes == 0:
            continue
        memory = memoryview(buffer.numpy()).cast("B")
        step = chunk_bytes if reader == "parallel" else 1 << 62
        for r in plan.ranges:
            for start in range(0, r.length, step):
                n = min(step, r.length - start)
                pieces.append((r.file_offset + start, memory[r.buffer_offset + start:r.buffer_offset + start + n]))
    if reader == "plain" or not hasattr(os, "preadv"):
        with open(path, "rb", buffering=0) as f:
            for offset, destination in pieces:
                f.seek(offset)
                _fill(lambda view, _offset: f.readinto(view), offset, destination)
    else:
        fd = os.open(path, os.O_RDONLY)
        try:
            with ThreadPoolExecutor(max_workers=max(1, min(threads, len(pieces))), thread_name_prefix="read") as pool:
                for _ in pool.map(lambda piece: _fill(lambda view, at: os.preadv(fd, [view], at), *piece), pieces):
                    pass
        finally:
            os.close(fd)
    return sum(len(m) for _, m in pieces)


def _fill(read, offset: int, destination: memoryview) -> None:
    """Call read(view, file offset) until `destination` is full; both readers release the GIL."""
    done, total = 0, len(destination)
    while done < total:
        got = read(destination[done:], offset + done)
        if not got:
            raise ShortRead(f"file ends at byte {offset + done}, {total - done} bytes short of a tensor")
        done += got
