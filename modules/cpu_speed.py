"""Which compute path is fastest on this CPU, for --precision auto: fp32, or bf16 weights (with or without
channels_last), timed once on a small UNet-like block and remembered per machine (CPU model, torch version)
in the cache folder, so later starts cost nothing.

bf16 only counts when the CPU has native bf16 instructions (avx512_bf16 / AMX / ARM bf16): elsewhere torch
emulates it, slower than fp32, and the check is skipped."""
from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

CACHE_NAME = "cpu-precision.json"
PATHS = ("fp32", "bf16", "bf16-channels-last")
FASTER_BY = 0.9  # bf16 must take at most 90 % of fp32's time to be chosen: noise never flips the default


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if any(f in flags for f in (" avx512_bf16", " amx_bf16", " bf16")):
        return True
    return platform.machine() == "arm64" and platform.system() == "Darwin"  # Apple M2 and later


def _block() -> nn.Module:
    torch.manual_seed(0)  # what a UNet does most: 3×3 convolutions, group norm, attention-sized matmuls
    return nn.Sequential(nn.Conv2d(320, 320, 3, padding=1), nn.GroupNorm(32, 320), nn.SiLU(),
                         nn.Conv2d(320, 320, 3, padding=1), nn.Flatten(2), nn.Linear(256, 256)).eval()


def _seconds(path: str, repeats: int = 5) -> float:
    block, x = _block(), torch.randn(2, 320, 16, 16)
    if path != "fp32":
        block, x = block.to(torch.bfloat16), x.to(torch.bfloat16)
    if path.endswith("channels-last"):
        block, x = block.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    best = float("inf")
    with torch.inference_mode():
        block(x)
        for _ in range(repeats):
            start = time.perf_counter()
            block(x)
            best = min(best, time.perf_counter() - start)
    return best


def measure() -> dict:
    """Seconds of each path (best of a few runs) and the one chosen."""
    if not has_native_bf16():
        return {"chosen": "fp32", "why": "no native bf16 instructions on this CPU"}
    times = {path: _seconds(path) for path in PATHS}
    fastest = min(PATHS[1:], key=times.__getitem__)
    chosen = fastest if times[fastest] <= FASTER_BY * times["fp32"] else "fp32"
    return {"chosen": chosen, "seconds": {k: round(v, 5) for k, v in times.items()}}


def fastest_path(cache_dir: Path | None) -> str:
    """fp32, bf16 or bf16-channels-last: measured once per CPU model and torch version, then read back."""
    key = f"{cpu_model()} | torch {torch.__version__}"
    file = cache_dir / CACHE_NAME if cache_dir is not None else None
    known: dict = {}
    if file is not None and file.is_file():
        try:
            known = json.loads(file.read_text())
        except (OSError, ValueError):
            known = {}  # unreadable: measured again and rewritten
        if isinstance(known, dict) and isinstance(known.get(key), dict) and known[key].get("chosen") in PATHS:
            return known[key]["chosen"]
    if not isinstance(known, dict):
        known = {}
    started = time.perf_counter()
    found = measure()
    log.info("--precision auto on this CPU: %s (checked in %.1f s: %s)", found["chosen"],
             time.perf_counter() - started, found.get("seconds") or found.get("why"))
    if file is not None:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(json.dumps({**known, key: found}, indent=1))
        except OSError as e:  # a read-only cache folder: measured again next start
            log.warning("could not remember the CPU precision check in %s: %s", file, e)
    return found["chosen"]
