"""Peak RSS of one VAE decode, with and without tiling, on the full-size SD 1.5 VAE architecture
(bench/cold_load.py's VAE config, random fp32 weights), each measurement in a fresh subprocess so its peak is
its own. "tiled" forces modules/generation/vae_tiles.py's tiled path at every size; "untiled" is the plain
decode; the app's default (auto) tiles above 1024² only. Prints one JSON line per measurement as it ends.

    HF_HUB_OFFLINE=1 venv/bin/python bench/vae_tiling.py [--sizes 512 1024 2048] [--timeout 900] [--max-tiles N]
                                                         [--threads 1]

A tiled decode of 2048² is 36 decodes of a 512² tile (with their overlaps): on a busy 2-core CPU that is tens of
minutes. --max-tiles N stops it after N tiles (`tiles_done` of `tiles`): the peak is then that of N tiles, and
`peak_bound_mb` adds what the tiles not decoded would still hold at the end (each decoded tile is kept until
the seams are blended: 3 × 512² floats, 3 MB, and the final picture) — the one part of the memory that grows
with the number of tiles. `tile_peaks_mb` is the peak RSS after each tile: flat after the first when a tile's
working memory is given back.
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


class EnoughTiles(Exception):
    pass


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(size: int, mode: str, max_tiles: int | None, threads: int | None) -> None:
    sys.path.insert(0, str(ROOT))
    import torch
    from diffusers import AutoencoderKL

    from bench.cold_load import VAE_CONFIG
    from modules.generation import vae_tiles

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    vae = AutoencoderKL(**VAE_CONFIG).eval()
    vae_tiles.TILE_ABOVE_PIXELS = 0 if mode == "tiled" else 1 << 62
    latents = torch.randn(1, 4, size // 8, size // 8)
    tile = vae.tile_latent_min_size
    stride = int(tile * (1 - vae.tile_overlap_factor))
    tiles = len(range(0, size // 8, stride)) ** 2 if mode == "tiled" else 1
    tile_peaks = []

    def after_tile(_module, _args, _output):
        tile_peaks.append(round(peak_mb()))
        if max_tiles and len(tile_peaks) >= max_tiles and len(tile_peaks) < tiles:
            raise EnoughTiles
    vae.decoder.register_forward_hook(after_tile)
    before = peak_mb()
    started = time.perf_counter()
    try:
        with torch.inference_mode():
            image = vae_tiles.decode(vae, latents)
        assert image.shape[-1] == size
    except EnoughTiles:
        pass
    seconds = time.perf_counter() - started
    peak = peak_mb()
    row = {"size": size, "mode": mode, "threads": torch.get_num_threads(), "peak_rss_mb": round(peak),
           "before_decode_mb": round(before), "decode_mb": round(peak - before), "seconds": round(seconds, 1),
           "tiles": tiles, "tiles_done": len(tile_peaks), "tile_peaks_mb": tile_peaks}
    if len(tile_peaks) < tiles:
        sample = vae.config.sample_size
        still_held = (tiles - len(tile_peaks)) * 3 * sample * sample * 4 + 3 * size * size * 4
        row["peak_bound_mb"] = round(peak + still_held / 2**20)
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--modes", nargs="+", default=["untiled", "tiled"])
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--max-tiles", type=int, default=None, help="stop a tiled decode after this many tiles")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in each measurement")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"))
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1], args.max_tiles, args.threads)
        return
    for size in args.sizes:
        for mode in args.modes:
            extra = [*(["--max-tiles", str(args.max_tiles)] if args.max_tiles else []),
                     *(["--threads", str(args.threads)] if args.threads else [])]
            try:
                subprocess.run([sys.executable, __file__, "--child", str(size), mode, *extra], check=True,
                               timeout=args.timeout)
            except subprocess.TimeoutExpired:
                print(json.dumps({"size": size, "mode": mode, "timeout_s": args.timeout}), flush=True)


if __name__ == "__main__":
    main()
