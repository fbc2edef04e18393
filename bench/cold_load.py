"""Cold load of a full-size SD 1.5-architecture single file: how close to the raw read.

Builds once (cached under /tmp/zoo-bench/) an SD 1.5-architecture checkpoint with random
fp16 weights (~2.1 GB) plus its sidecar config folder, then times, each in a fresh
subprocess (so peak RSS is per load, while the page cache stays warm for all):

    raw_read_s          the file's bytes into preallocated RAM, best reader: the limit
    cold_load_s         modules.models.fast_load, fp16, reader="auto"
    cold_load_plain_s   ... reader="plain";  cold_load_mmap_s: bench/readers.py "mmap" (safe_open)
    cold_load_map_s     ... bench/readers.py "map": no read, weights stay views of the file mapping
    naive_load_s        diffusers StableDiffusionPipeline.from_single_file with the sidecar;
                        it returns with fp16 weights still views of the file mapping, so
    naive_load_touched_s  also faults every weight page in (what first use would pay)

Each figure is the median of --repeats runs, interleaved so machine noise hits all alike.
Then some again with the file evicted from the page cache (`evicted_page_cache_s`).
Prints one JSON object. Target: cold_load_s <= 1.5 x raw_read_s (raw_read_s: best of the
readers that read into owned memory).

    venv/bin/python bench/cold_load.py [--repeats 3] [--dir /tmp/zoo-bench]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SEED = 1234
CHECKPOINT_NAME = "sd15-random-fp16.safetensors"

# The published SD 1.5 component configs (runwayml/stable-diffusion-v1-5), weights random.
UNET_CONFIG = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, norm_eps=1e-5, act_fn="silu",
    flip_sin_to_cos=True, freq_shift=0, downsample_padding=1, mid_block_scale_factor=1, center_input_sample=False,
)
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=32, act_fn="silu", sample_size=512, scaling_factor=0.18215,
)
TEXT_CONFIG = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
)
SCHEDULER_CONFIG = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1,
)


# ---------------------------------------------------------------- the checkpoint


def build_checkpoint(folder: Path) -> Path:
    """`folder/sd15-random-fp16.safetensors` and its sidecar `.config/`, built once."""
    path = folder / CHECKPOINT_NAME
    sidecar = folder / (path.stem + ".config")
    if path.is_file() and (sidecar / "model_index.json").is_file():
        return path
    import torch
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.convert_to_single_file import pipeline_to_original_state_dict
    from tests.tiny_models import make_tiny_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    if sidecar.exists():
        shutil.rmtree(sidecar)
    tokenizer = make_tiny_tokenizer(sidecar / "tokenizer")  # the text config keeps the real vocab size
    with init_empty_weights():
        unet = UNet2DConditionModel(**UNET_CONFIG)
        vae = AutoencoderKL(**VAE_CONFIG)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            **TEXT_CONFIG, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id))
    generator = torch.Generator().manual_seed(SEED)
    for model in (unet, vae, text_encoder):
        for owner in model.modules():
            for name, param in list(owner._parameters.items()):
                if param is not None:
                    value = torch.empty(param.shape, dtype=torch.float16).normal_(0, 0.02, generator=generator)
                    owner._parameters[name] = torch.nn.Parameter(value, requires_grad=False)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=PNDMScheduler(**SCHEDULER_CONFIG), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    state = {k: v.contiguous() for k, v in pipeline_to_original_state_dict(pipe).items()}
    partial = path.with_name(path.name + ".partial")
    save_file(state, str(partial), metadata={"format": "pt"})
    pipe.save_config(str(sidecar))  # model_index.json
    unet.save_config(str(sidecar / "unet"))
    vae.save_config(str(sidecar / "vae"))
    text_encoder.config.save_pretrained(str(sidecar / "text_encoder"))
    pipe.scheduler.save_config(str(sidecar / "scheduler"))
    partial.replace(path)
    return path


# ---------------------------------------------------------------- one measurement (in a subprocess)


def measure(kind: str, path: Path) -> dict:
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel  # noqa: F401
    from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401

    from bench import readers
    from modules.models import fast_load, parallel_read
    from modules.models.loader import quiet_library_progress_bars
    from modules.models.safetensors_header import read_header

    quiet_library_progress_bars()
    config = path.with_name(path.stem + ".config")
    baseline = _rss_bytes()
    extra: dict = {}
    started = time.perf_counter()
    if kind.startswith("raw_"):  # every tensor byte of the file into RAM, nothing else
        reader = kind.removeprefix("raw_")
        header, _ = read_header(path)
        with open(path, "rb") as f:
            data_start = 8 + int.from_bytes(f.read(8), "little")
        plan = parallel_read.BufferPlan({"data": (data_start, path.stat().st_size)})
        kept = plan.allocate()
        if reader == "map":  # mapped, pages faulted in: the bytes in memory without a copy
            kept = readers.map_file(path, [(data_start, path.stat().st_size)])
        elif reader == "mmap":  # safetensors' mmap: each tensor's pages faulted in, copied into the buffer
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                for name, info in header.items():
                    begin, end = info["data_offsets"]
                    kept[begin:end].copy_(f.get_tensor(name).reshape(-1).view(torch.uint8))
        else:
            parallel_read.read_into(path, [(plan, kept)], reader=reader)
    elif kind.startswith("cold_"):
        name = kind.removeprefix("cold_")
        load = fast_load.load_single_file_with_report(path, config, torch.float16,
                                                      reader=readers.READERS.get(name, name))
        kept = load.pipeline
        extra = {"reader": name if name in readers.READERS else load.report.reader,
                 "read_s": round(load.report.read_seconds, 3),
                 "bytes_read": load.report.bytes_read, "buffer_bytes": load.report.buffer_bytes}
    elif kind in ("naive", "naive_touched"):
        kept = StableDiffusionPipeline.from_single_file(
            str(path), config=str(config), local_files_only=True, dtype=torch.float16,
            safety_checker=None, requires_safety_checker=False)
        if kind == "naive_touched":
            # diffusers leaves fp16 weights as views of safetensors' file mapping: nothing is read
            # until first use. Touch one element per 4 KiB page so every weight is in memory.
            for model in (kept.unet, kept.vae, kept.text_encoder):
                for param in model.parameters():
                    flat = param.detach().reshape(-1)
                    flat[::max(1, 4096 // flat.element_size())].float().sum()
    else:
        raise ValueError(kind)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    anon, file_backed = _rss_bytes("RssAnon:"), _rss_bytes("RssFile:")
    del kept
    return {"seconds": seconds, "peak_rss_bytes": peak, "rss_before_bytes": baseline,
            "rss_anon_bytes": anon, "rss_file_bytes": file_backed, **extra}


def _rss_bytes(field: str = "VmRSS:") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def _resident_fraction(path: Path) -> float | None:
    """How much of the file is in the page cache (util-linux fincore), or None if unknown."""
    if not shutil.which("fincore"):
        return None
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                             capture_output=True, text=True, check=True).stdout.split()
        return int(out[0]) / path.stat().st_size
    except (subprocess.CalledProcessError, ValueError, IndexError):
        return None


def run_in_subprocess(kind: str, path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, __file__, "--measure", kind, "--file", str(path)],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise RuntimeError(f"{kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main


KINDS = ("raw_parallel", "raw_plain", "raw_mmap", "raw_map", "cold_auto", "cold_parallel", "cold_plain",
         "cold_mmap", "cold_map", "naive", "naive_touched")
# Also timed with the file evicted from the page cache before each run (posix_fadvise DONTNEED
# on this file only, so other processes' cache is untouched): reads from the disk.
COLD_CACHE_KINDS = ("raw_parallel", "raw_plain", "raw_map", "cold_parallel", "cold_plain", "cold_map",
                    "naive_touched")
BUFFERED_READERS = ("parallel", "plain", "mmap")  # read into owned memory; "map" does not


def evict_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/zoo-bench"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold-cache-repeats", type=int, default=2, help="0 skips the evicted-cache runs")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.file)))
        return

    started = time.perf_counter()
    path = build_checkpoint(args.dir)
    built_s = time.perf_counter() - started
    with open(path, "rb") as f:  # warm the page cache: every run then reads from RAM alike
        while f.read(64 << 20):
            pass
    resident_before = _resident_fraction(path)
    runs: dict[str, list[dict]] = {k: [] for k in KINDS}
    for _ in range(args.repeats):
        for kind in KINDS:
            runs[kind].append(run_in_subprocess(kind, path))
    resident_after = _resident_fraction(path)
    cold_runs: dict[str, list[dict]] = {k: [] for k in COLD_CACHE_KINDS}
    evicted = []
    for _ in range(args.cold_cache_repeats):
        for kind in COLD_CACHE_KINDS:
            evict_from_page_cache(path)
            evicted.append(_resident_fraction(path))
            cold_runs[kind].append(run_in_subprocess(kind, path))

    def median(kind: str, key: str = "seconds") -> float:
        return statistics.median(r[key] for r in runs[kind])

    raw = {k.removeprefix("raw_"): round(median(k), 3) for k in KINDS if k.startswith("raw_")}
    best_raw = min(v for k, v in raw.items() if k in BUFFERED_READERS)
    cold = median("cold_auto")
    gib = 1 << 30
    result = {
        "file_bytes": path.stat().st_size,
        "raw_read_s": best_raw,
        "raw_read_best_reader": min(BUFFERED_READERS, key=raw.get),
        "raw_read_by_reader_s": raw,
        "cold_load_s": round(cold, 3),
        "cold_load_reader": runs["cold_auto"][0]["reader"],
        "cold_load_parallel_s": round(median("cold_parallel"), 3),
        "cold_load_plain_s": round(median("cold_plain"), 3),
        "cold_load_mmap_s": round(median("cold_mmap"), 3),
        "cold_load_map_s": round(median("cold_map"), 3),  # opt-in: weights stay file-backed
        "cold_load_read_part_s": round(median("cold_auto", "read_s"), 3),
        "naive_load_s": round(median("naive"), 3),
        "cold_over_raw": round(cold / best_raw, 2),
        "naive_load_touched_s": round(median("naive_touched"), 3),
        "naive_over_cold": round(median("naive") / cold, 2),
        "naive_touched_over_cold": round(median("naive_touched") / cold, 2),
        "target_cold_over_raw_max": 1.5,
        "bytes_read": runs["cold_auto"][0]["bytes_read"],
        "buffer_bytes": runs["cold_auto"][0]["buffer_bytes"],
        # Peak RSS of each fresh process, and its growth over the process after imports.
        "peak_rss_gib": {k: round(median(k, "peak_rss_bytes") / gib, 2) for k in KINDS},
        "peak_rss_over_imports_gib": {
            k: round(statistics.median(r["peak_rss_bytes"] - r["rss_before_bytes"] for r in runs[k]) / gib, 2)
            for k in KINDS},
        # After the load: anonymous memory (owned) vs file-backed pages (the page cache, mapped).
        "rss_anon_after_gib": {k: round(median(k, "rss_anon_bytes") / gib, 2) for k in KINDS},
        "rss_file_after_gib": {k: round(median(k, "rss_file_bytes") / gib, 2) for k in KINDS},
        "all_runs_s": {k: [round(r["seconds"], 3) for r in v] for k, v in runs.items()},
        "evicted_page_cache_s": {k: round(statistics.median(r["seconds"] for r in v), 3)
                                 for k, v in cold_runs.items() if v},
        "evicted_page_cache_runs_s": {k: [round(r["seconds"], 3) for r in v] for k, v in cold_runs.items() if v},
        "evicted_resident_fraction_max": max((f for f in evicted if f is not None), default=None),
        "repeats": args.repeats,
        "page_cache": ("warm: the file was read once before the runs; resident fraction "
                       f"before {resident_before}, after {resident_after} (fincore)"),
        "machine": f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end",
        "checkpoint_build_s": round(built_s, 1),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
