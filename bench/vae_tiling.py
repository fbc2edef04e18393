"""Peak RSS of one VAE decode, with and without tiling, on the full-size SD 1.5 VAE architecture
(bench/cold_load.py's VAE config, random fp32 weights), each measurement in a fresh subprocess so its peak is
its own. "tiled" forces modules/generation/vae_tiles.py's tiled path at every size; "untiled" is the plain
decode; the app's default (auto) tiles above 1024² only. Prints one JSON line per measurement as it ends.

    HF_HUB_OFFLINE=1 venv/bin/python bench/vae_tiling.py [--sizes 512 1024 2048] [--timeout 900]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(size: int, mode: str) -> None:
    sys.path.insert(0, str(ROOT))
    import torch
    from diffusers import AutoencoderKL

    from bench.cold_load import VAE_CONFIG
    from modules.generation import vae_tiles

    torch.manual_seed(0)
    vae = AutoencoderKL(**VAE_CONFIG).eval()
    vae_tiles.TILE_ABOVE_PIXELS = 0 if mode == "tiled" else 1 << 62
    latents = torch.randn(1, 4, size // 8, size // 8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    with torch.inference_mode():
        image = vae_tiles.decode(vae, latents)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert image.shape[-1] == size
    print(json.dumps({"size": size, "mode": mode, "peak_rss_mb": round(peak), "before_decode_mb": round(before),
                      "decode_mb": round(peak - before), "seconds": round(seconds, 1)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--modes", nargs="+", default=["untiled", "tiled"])
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"))
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1])
        return
    for size in args.sizes:
        for mode in args.modes:
            try:
                subprocess.run([sys.executable, __file__, "--child", str(size), mode], check=True,
                               timeout=args.timeout)
            except subprocess.TimeoutExpired:
                print(json.dumps({"size": size, "mode": mode, "timeout_s": args.timeout}), flush=True)


if __name__ == "__main__":
    main()
