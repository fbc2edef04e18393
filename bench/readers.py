"""The cold loader's comparison readers (bench/cold_load.py): never the app's way to load a checkpoint.

    mmap   safetensors' safe_open, each tensor's pages faulted in and copied into the loader's buffers
    map    nothing read: weights are views of a private mapping of the file, i.e. the page cache itself
           (fastest when it is warm, no second copy in RAM, but file-backed memory: see map_file)

Each is a modules.models.fast_load.TensorReader: `load_single_file(path, config, dtype, reader=READERS["map"])`.
"""
from __future__ import annotations

import mmap as _mmap
import os
from pathlib import Path

import torch

from modules.errors import BadModelFile
from modules.models import fast_load
from modules.models.parallel_read import BufferPlan, ShortRead

MADV_POPULATE_READ = 22  # Linux >= 5.14; not yet named in Python's mmap module


def map_file(path: str | Path, spans: list[tuple[int, int]]) -> torch.Tensor:
    """The whole file as a uint8 tensor over a private (copy-on-write) mapping, with the
    pages of `spans` faulted in now rather than on first use.

    With the page cache warm this costs no copy and no new memory: the tensor's pages ARE
    the page cache. The price: that memory is file-backed, so the OS may drop it under
    pressure (and re-read it from disk on use), it cannot be pinned without a copy, and
    truncating the file in place while mapped (e.g. `cp` over it) makes access crash the
    process with SIGBUS. Replacing it by rename, as downloads and save_single_file do, is safe."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return torch.empty(0, dtype=torch.uint8)
        mapping = _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_COPY)
    for r in BufferPlan({str(i): span for i, span in enumerate(spans)}).ranges:
        if r.file_offset + r.length > size:
            raise ShortRead(f"file ends at byte {size}, before the range ending at {r.file_offset + r.length}")
        start = r.file_offset - r.file_offset % _mmap.ALLOCATIONGRANULARITY
        if hasattr(mapping, "madvise"):
            try:
                mapping.madvise(MADV_POPULATE_READ, start, r.file_offset + r.length - start)
            except OSError:  # older kernel: ask for read-ahead instead
                mapping.madvise(_mmap.MADV_WILLNEED, start, r.file_offset + r.length - start)
    return torch.frombuffer(mapping, dtype=torch.uint8)  # the tensor keeps the mapping alive


def mapped(path: Path, header: dict[str, dict], data_start: int, kept: list[str], passing: list[str],
           report: fast_load.LoadReport) -> dict[str, torch.Tensor]:
    names = kept + passing
    spans = {n: (data_start + header[n]["data_offsets"][0], data_start + header[n]["data_offsets"][1])
             for n in names}
    try:
        mapping = map_file(path, list(spans.values()))
    except ShortRead as e:
        raise BadModelFile(path, f"is shorter than its header says (truncated download?): {e}") from e
    except (OSError, ValueError) as e:
        raise BadModelFile(path, f"cannot map file: {e}") from e
    tensors = {}
    for n, (begin, end) in spans.items():
        dtype = fast_load.FILE_DTYPES[header[n]["dtype"]]
        raw = mapping[begin:end]
        if begin % torch.empty((), dtype=dtype).element_size():
            raw = raw.clone()
        tensors[n] = raw.view(dtype).view(header[n]["shape"])
        report.bytes_read += end - begin
    report.tensors_read += len(names)
    return tensors


def safetensors_mmap(path: Path, header: dict[str, dict], data_start: int, kept: list[str], passing: list[str],
                     report: fast_load.LoadReport) -> dict[str, torch.Tensor]:
    return fast_load.read_tensors(path, header, data_start, kept, passing, report, fill=_copy_from_safe_open)


def _copy_from_safe_open(path: Path, jobs: list) -> int:
    """Kept as safe_open gives them, tensors would only be backed by the file mapping: the "load"
    would return before reading anything and the first use would pay. So each is copied."""
    from safetensors import SafetensorError, safe_open

    done = 0
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for plan, buffer, names in jobs:
                for n in names:
                    source = f.get_tensor(n).reshape(-1).view(torch.uint8)
                    plan.raw(buffer, n).copy_(source)
                    done += source.numel()
    except SafetensorError as e:
        raise OSError(str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__) from e
    return done


READERS = {"mmap": safetensors_mmap, "map": mapped}
