"""Checkpoint switching through the pipeline manager, against what a naive UI does.

Uses the full-size SD 1.5-architecture checkpoint with random fp16 weights that bench/cold_load.py
builds (~2.1 GB, cached under /tmp/zoo-bench/), plus two variants with their own UNet weights
(VAE and text encoder identical, as in fine-tunes). Prints one JSON object:

    raw_read_s          the file's bytes into RAM (parallel reads): the limit for a cold load
    cold_load_first_s   the manager's first ever load of a file (includes hashing its components once)
    cold_load_s         the manager's load of a file not in the cache (component hashes known)
    cold_switch_s       with room for one checkpoint, switching to another of the same architecture:
                        evicts the old one and loads the new one into its built modules (skeletons)
    cold_switch_building_modules_s   the same switches with skeleton reuse off (what it saves)
    warm_swap_s         switching to a checkpoint already cached: RAM -> device and back
                        (on a CPU the device is the RAM: what is left is the manager's bookkeeping)
    naive_reload_s      diffusers from_single_file on every switch, what a naive UI does
    rss_after_2_switches_bytes, rss_after_30_switches_bytes: three checkpoints, room for two
and the ratios the targets are stated in. On CUDA also the pinned host->device bandwidth measured
in the same run and the warm swap's share of it.

    venv/bin/python bench/swap.py [--dir /tmp/zoo-bench] [--switches 30]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_variant(base: Path, name: str, seed: int) -> Path:
    """A copy of `base` whose UNet weights differ (a few bytes of every UNet tensor), with the same sidecar."""
    from modules.models.safetensors_header import read_header

    target = base.with_name(name + ".safetensors")
    sidecar = target.with_name(name + ".config")
    if not target.exists():
        header, _ = read_header(base)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(base, partial)
        with open(base, "rb") as f:
            data_start = 8 + int.from_bytes(f.read(8), "little")
        with open(partial, "r+b") as f:
            for key, entry in header.items():
                if key.startswith("model.diffusion_model.") and entry["dtype"] == "F16":
                    begin, end = entry["data_offsets"]
                    f.seek(data_start + begin)
                    f.write(os.urandom(min(64, end - begin)) if seed else bytes(min(64, end - begin)))
        os.replace(partial, target)
    if not sidecar.exists():
        shutil.copytree(base.with_name(base.stem + ".config"), sidecar)
    return target


def raw_read_seconds(path: Path) -> float:
    from modules.models import parallel_read

    started = time.perf_counter()
    plan = parallel_read.BufferPlan({"file": (0, path.stat().st_size)})
    buffer = plan.allocate()
    parallel_read.read_into(path, [(plan, buffer)], reader="parallel")
    seconds = time.perf_counter() - started
    del buffer
    return seconds


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/zoo-bench"))
    parser.add_argument("--switches", type=int, default=30)
    args = parser.parse_args()

    import torch

    from bench.cold_load import build_checkpoint
    from modules.backend import Backend, BackendConfig
    from modules.devices import DeviceConfig, pick_device
    from modules.models.loader import quiet_library_progress_bars
    from modules.models.memory import rss_bytes

    quiet_library_progress_bars()
    models_dir = args.dir / "swap-models"
    checkpoints = models_dir / "Stable-diffusion"
    checkpoints.mkdir(parents=True, exist_ok=True)
    base = build_checkpoint(args.dir)
    names = []
    for name, seed in (("a", 0), ("b", 1), ("c", 2)):
        path = make_variant(base, name, seed)
        names.append(path.name)
        for item in (path, path.with_name(path.stem + ".config")):
            link = checkpoints / item.name
            if not link.exists():
                link.symlink_to(item)

    device = pick_device("auto")
    devices = DeviceConfig(device, torch.float16, torch.float16, "none")
    cache_dir = Path(tempfile.mkdtemp(prefix="swap-cache-"))  # fresh: the first load really is the first
    backend = Backend(BackendConfig(models_dir=models_dir, outdir=args.dir / "out", cache_dir=cache_dir,
                                    devices=devices, offline=True))
    manager = backend.manager
    a, b, c = names

    raw = statistics.median(raw_read_seconds(base) for _ in range(3))
    cold_first = timed(lambda: manager.load(a))  # hashes the components once; later loads find the hashes
    model_bytes = manager.cache.models[next(iter(manager.cache.models))].bytes
    manager.unload_all()
    gc.collect()
    colds = []
    for _ in range(3):  # the load alone: unloading (freeing 2 GB) is not part of it
        colds.append(timed(lambda: manager.load(a)))
        manager.unload_all()
        gc.collect()
    cold = statistics.median(colds)

    # Room for one: each switch evicts the last checkpoint and loads the next into its modules.
    manager.cache.ram_budget = int(model_bytes * 1.5)
    manager.load(b), manager.load(c)  # first loads of b and c hash their components once

    def switches() -> tuple[float, int]:
        done = [(timed(lambda n=n: manager.load(n)), manager.load(n).reused_modules)
                for n in (a, b, c, a, b)]
        return statistics.median(seconds for seconds, _ in done), min(count for _, count in done)

    cold_switch, reused = switches()
    manager.cache.skeletons.max_skeletons = 0  # the same switches, every module built afresh
    cold_switch_building, _ = switches()
    manager.cache.skeletons.max_skeletons = 8
    manager.unload_all()
    gc.collect()

    # Room for two checkpoints in RAM, for one on the device: each switch moves a UNet RAM -> device,
    # and the other one's back (by re-pointing at its RAM copy).
    manager.cache.ram_budget = int(model_bytes * 2.05)
    if manager.cache.vram_budget is not None:
        manager.cache.vram_budget = int(model_bytes * 1.05)
    manager.load(a)
    moved_bytes = manager.load(b).components["unet"].bytes
    warm = statistics.median(timed(lambda n=n: manager.load(n)) for n in [a, b] * 5)

    from diffusers import StableDiffusionPipeline

    def naive():
        pipe = StableDiffusionPipeline.from_single_file(str(checkpoints / a), config=str(checkpoints / "a.config"),
                                                        local_files_only=True, dtype=torch.float16,
                                                        safety_checker=None, requires_safety_checker=False)
        pipe.to(device)
        del pipe
        gc.collect()

    naive_s = statistics.median(timed(naive) for _ in range(2))

    # Three checkpoints, room for two: every switch to the least recent one evicts and cold-loads.
    manager.unload_all()
    gc.collect()
    order = [a, b, c]
    rss = {}
    for i in range(args.switches):
        manager.load(order[i % 3])
        gc.collect()
        if i + 1 in (2, args.switches):
            rss[i + 1] = rss_bytes()

    result = {
        "device": str(device), "checkpoint_bytes": base.stat().st_size, "model_bytes_in_ram": model_bytes,
        "raw_read_s": round(raw, 3), "cold_load_first_s": round(cold_first, 3), "cold_load_s": round(cold, 3),
        "cold_switch_s": round(cold_switch, 3), "modules_reused_per_switch": reused,
        "cold_switch_building_modules_s": round(cold_switch_building, 3),
        "warm_swap_s": round(warm, 5), "naive_reload_s": round(naive_s, 3),
        "cold_over_raw": round(cold / raw, 3),
        "cold_switch_over_raw": round(cold_switch / raw, 3), "warm_over_naive": round(warm / naive_s, 5),
        "rss_after_2_switches_bytes": rss[2], f"rss_after_{args.switches}_switches_bytes": rss[args.switches],
        "rss_growth": round(rss[args.switches] / rss[2] - 1, 4),
        "targets": {"warm_over_naive": "<= 0.05", "cold_over_raw": "<= 1.5", "rss_growth": "<= 0.05"},
    }
    if device.type == "cuda":
        host = torch.empty(moved_bytes, dtype=torch.uint8).pin_memory()
        torch.cuda.synchronize()
        copy = statistics.median(timed(lambda: (host.to(device, non_blocking=True), torch.cuda.synchronize()))
                                 for _ in range(3))
        result["pinned_h2d_gbps"] = round(moved_bytes / copy / 1e9, 2)
        result["warm_swap_gbps"] = round(moved_bytes / warm / 1e9, 2)
        result["warm_swap_share_of_h2d"] = round(result["warm_swap_gbps"] / result["pinned_h2d_gbps"], 3)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
