"""Fused QKV projections (modules/models/fused_qkv.py, the app's default on a CPU): the full-size SD
1.5-architecture UNet's step time with and without, alternated in one process; prints one JSON object.

    venv/bin/python bench/fused_qkv.py [--size 128] [--repeats 7] [--precisions fp32,auto] [--threads 1]

The full-size file is built as bench/cold_load.py does (random fp16 weights) and loaded by the app's manager
at each precision (fp32, and auto: what --precision auto chose on this CPU), fused as the app loads it; the
unfused runs give the same modules diffusers' own AttnProcessor2_0 (three products). One UNet call at batch 2
(CFG) is one step. `ratio` = fused / unfused, medians (wall-clock; `cpu_ratio` in process CPU time);
`max_abs_diff` between the two outputs."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402


def step_seconds(unet, sample, timestep, context) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        unet(sample, timestep, encoder_hidden_states=context)
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(unet, size: int, repeats: int) -> dict:
    from bench.txt2img import _plain_attention

    dtype = unet.dtype
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, size // 8, size // 8, generator=generator).to(dtype)
    context = torch.randn(2, 77, 768, generator=generator).to(dtype)
    timestep = torch.tensor(500)
    with torch.inference_mode():
        fused = unet(sample, timestep, encoder_hidden_states=context).sample.float()
        undo = _plain_attention(unet)
        assert undo is not None, "the app did not fuse this UNet"
        plain = unet(sample, timestep, encoder_hidden_states=context).sample.float()
        undo()
    times: dict[str, list[float]] = {"unfused": [], "fused": []}
    cpu: dict[str, list[float]] = {"unfused": [], "fused": []}
    for _ in range(repeats):
        for mode in times:
            undo = _plain_attention(unet) if mode == "unfused" else None
            wall, cpu_s = step_seconds(unet, sample, timestep, context)
            times[mode].append(wall)
            cpu[mode].append(cpu_s)
            if undo is not None:
                undo()
    medians = {k: statistics.median(v) for k, v in times.items()}
    cpu_medians = {k: statistics.median(v) for k, v in cpu.items()}
    return {"unfused_step_s": round(medians["unfused"], 4), "fused_step_s": round(medians["fused"], 4),
            "ratio": round(medians["fused"] / medians["unfused"], 3),
            "cpu_ratio": round(cpu_medians["fused"] / cpu_medians["unfused"], 3),
            "max_abs_diff": float((plain - fused).abs().max()),
            "all_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
            "all_cpu_s": {k: [round(x, 3) for x in v] for k, v in cpu.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--precisions", default="fp32,auto")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/zoo-bench"), help="where the full-size file is built")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import tempfile

    from bench.cold_load import build_checkpoint
    from bench.txt2img import backend_for
    from modules.models.loader import quiet_library_progress_bars

    quiet_library_progress_bars()
    path = build_checkpoint(args.dir)
    out: dict = {"size": args.size, "load_avg": os.getloadavg()[0], "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory(prefix="bench-fused-") as tmp:
        models_dir = Path(tmp) / "models"
        (models_dir / "Stable-diffusion").mkdir(parents=True)
        for item in (path, path.with_name(path.stem + ".config")):
            (models_dir / "Stable-diffusion" / item.name).symlink_to(item)
        for name in args.precisions.split(","):
            backend = backend_for(models_dir, Path(tmp) / name, name)
            model = backend.manager.load(path.name)
            out[name] = {"precision": backend.config.devices.describe(), **measure(model.pipe.unet, args.size,
                                                                                    args.repeats)}
            print(json.dumps({name: out[name]}), file=sys.stderr, flush=True)
            backend.manager.unload()
    out["load_avg_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
