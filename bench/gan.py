"""GAN sampling speed; prints one JSON object.

    venv/bin/python bench/gan.py [--batch 64] [--device cpu] [--threads N]

Times the app's own sampling path (capabilities.gan.run.synthesize: mapping, truncation, synthesis)
at batch 64 on the built-in GAN (models/GAN/shapes-gan.safetensors; if it is absent, a generator
with the built-in config and random weights, which costs exactly the same). The FLOPs of one
forward are counted with torch.utils.flop_counter.FlopCounterMode; the achieved GFLOP/s is set
against a large float32 matmul timed in the same run, on the same device and threads (the
practical limit). Target: ratio >= 0.30.

    venv/bin/python bench/gan.py --stylegan stylegan2,stylegan3-t --sizes 256,1024 [--batch 4] [--half]

Times random-weight StyleGAN2 (config F) and StyleGAN3-T/R generators with NVIDIA's published settings (STYLEGAN
below): mapping with ψ = 0.7, then synthesis with noise const; one JSON line per network and size, with the same
matmul baseline. `--half` runs the layers NVIDIA runs in fp16 (num_fp16_res=4) in fp16 (meant for a GPU).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modules.capabilities.gan import run as gan  # noqa: E402
from modules.generation.seeds import seed_latent  # noqa: E402
from modules.paths import MODELS_DIR  # noqa: E402

BUILT_IN = MODELS_DIR / "GAN" / "shapes-gan.safetensors"


def load_generator(device: torch.device) -> tuple[torch.nn.Module, str]:
    from modules.models.zoo_loader import load_gan
    from modules.zoo.gan import GANConfig, Generator

    if BUILT_IN.is_file():
        return load_gan(BUILT_IN).to(device), f"built-in ({BUILT_IN.name})"
    torch.manual_seed(0)
    return Generator(GANConfig()).eval().to(device), f"built-in config, random weights ({BUILT_IN.name} not found)"


# NVIDIA's configs: StyleGAN2 config F (channel_base 32768 at 1024², 16384 below 512²), StyleGAN3-T/R (channel_base
# 32768, or 65536 for R; channel_max 512, 1024 for R at 1024²), z_dim = w_dim = 512, mapping 8 layers (SG2), 2 (SG3).
STYLEGAN = {
    "stylegan2": lambda size: ("stylegan2", {"mapping_kwargs": {"num_layers": 8},
                                             "channel_base": 32768 if size >= 512 else 16384, "channel_max": 512,
                                             "num_fp16_res": 4, "conv_clamp": 256}),
    "stylegan3-t": lambda size: ("stylegan3", {"mapping_kwargs": {"num_layers": 2}, "channel_base": 32768,
                                               "channel_max": 512, "num_fp16_res": 4, "conv_clamp": 256}),
    "stylegan3-r": lambda size: ("stylegan3", {"mapping_kwargs": {"num_layers": 2}, "channel_base": 65536,
                                               "channel_max": 1024, "num_fp16_res": 4, "conv_clamp": 256,
                                               "conv_kernel": 1, "use_radial_filters": True}),
}


def stylegan_generator(name: str, size: int, device: torch.device) -> torch.nn.Module:
    from modules.models.stylegan_files import build_generator
    from modules.zoo.stylegan_config import config_from_init_kwargs

    architecture, kwargs = STYLEGAN[name](size)
    config = config_from_init_kwargs(architecture, {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": size,
                                                    "img_channels": 3, **kwargs})
    torch.manual_seed(0)
    return build_generator(config, design_filters=True).eval().requires_grad_(False).to(device)


def bench_stylegan(args, device: torch.device) -> list[dict]:
    results = []
    limit = matmul_gflops(device, args.matmul_size or (8192 if device.type == "cuda" else 2048), args.repeats)
    for name in args.stylegan.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            generator = stylegan_generator(name, size, device)
            caps = gan.capabilities(generator)
            z = torch.stack([seed_latent(s, caps.z_dim, "numpy") for s in range(args.batch)])
            classes = torch.zeros(args.batch, dtype=torch.long)
            options = gan.synthesis_options(caps)

            def forward():
                with torch.inference_mode():
                    ws = generator.mapping(z.to(device), classes.to(device), 0.7)
                    return generator.synthesis(ws, half=args.half, **options)

            from torch.utils.flop_counter import FlopCounterMode
            with FlopCounterMode(display=False) as counter:
                forward()
            flops = counter.get_total_flops()
            seconds = timed(forward, device, args.repeats, min_seconds=0.0 if device.type == "cpu" else 0.3)
            achieved = flops / seconds / 1e9
            result = {"model": f"{name} random weights", "size": size, "device": str(device),
                      "threads": torch.get_num_threads(), "dtype": "float16 layers" if args.half else "float32",
                      "batch": args.batch, "images_per_s": round(args.batch / seconds, 3),
                      "ms_per_batch": round(seconds * 1e3, 1), "gflop_per_image": round(flops / args.batch / 1e9, 2),
                      "achieved_gflops": round(achieved, 2), "matmul_gflops": round(limit, 2),
                      "ratio": round(achieved / limit, 3)}
            print(json.dumps(result), flush=True)
            results.append(result)
            del generator
    return results


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int, min_seconds: float = 0.3) -> float:
    """Median seconds per call over `repeats` rounds, each long enough to time reliably."""
    fn()
    sync(device)
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < min_seconds / 3 or calls < 2:
        fn()
        calls += 1
    sync(device)
    per_round = max(1, round(calls * min_seconds / (time.perf_counter() - start) / 3))
    rounds = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        sync(device)
        rounds.append((time.perf_counter() - start) / per_round)
    return statistics.median(rounds)


def matmul_gflops(device: torch.device, n: int, repeats: int) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    seconds = timed(lambda: torch.mm(a, b), device, repeats)
    return 2 * n ** 3 / seconds / 1e9


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--matmul-size", type=int, default=None, help="default 2048 on CPU, 8192 on GPU")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--stylegan", default=None, help="random-weight StyleGAN networks to time instead: "
                                                    f"{', '.join(STYLEGAN)} (comma-separated)")
    p.add_argument("--sizes", default="256", help="StyleGAN output sizes, comma-separated (e.g. 256,1024)")
    p.add_argument("--half", action="store_true", help="StyleGAN: NVIDIA's fp16 layers in fp16 (GPU)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.stylegan:
        return bench_stylegan(args, device)
    generator, which = load_generator(device)
    generator.to(memory_format=torch.channels_last)  # as load_gan does (again for the random-weights generator)
    caps = gan.capabilities(generator)
    z = torch.stack([seed_latent(s, caps.z_dim) for s in range(args.batch)])
    classes = torch.arange(args.batch) % max(len(caps.class_names), 1)

    def forward():
        return gan.synthesize(generator, z, classes, truncation_psi=0.7)

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        forward()
    flops = counter.get_total_flops()
    seconds = timed(forward, device, args.repeats)
    limit = matmul_gflops(device, args.matmul_size or (8192 if device.type == "cuda" else 2048), args.repeats)
    achieved = flops / seconds / 1e9
    result = {
        "model": which, "device": str(device), "threads": torch.get_num_threads(), "dtype": "float32",
        "batch": args.batch, "images_per_s": round(args.batch / seconds, 1),
        "ms_per_batch": round(seconds * 1e3, 2), "gflop_per_image": round(flops / args.batch / 1e9, 4),
        "achieved_gflops": round(achieved, 2), "matmul_gflops": round(limit, 2),
        "ratio": round(achieved / limit, 3), "target_ratio": 0.30,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
