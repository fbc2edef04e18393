"""Low memory on a FLUX-architecture transformer: what each storage keeps resident and what it costs per image.

    venv/bin/python bench/low_memory.py [--size mid|tiny] [--repeats 2] [--threads N] [--dir DIR]

One process, one models folder: a random-weight FLUX.1 schnell-architecture model (`mid`: 2 double + 4 single
blocks of width 768, 77M transformer weights; `tiny`: the test suite's) as a diffusers folder (the bf16
reference), the same transformer as an fp8 file and as GGUF Q8_0 / Q4_0 files (written by the `gguf` package,
as city96's are), each completed by the same VAE / CLIP-L / T5 files. Every variant runs through the app
(Backend.txt2img) with bf16 compute on the CPU, 128², 4 steps, the same seed; variants alternate per repeat.

Per variant: `transformer_bytes` (what the cache holds for the transformer, as the Models tab shows it),
`stored_as`, `seconds_per_image` (median), `psnr_vs_bf16_db` (the picture against the bf16 folder's).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

SIZES = {"mid": dict(num_layers=2, num_single_layers=4, attention_head_dim=128, num_attention_heads=6,
                     axes_dims_rope=(16, 56, 56)),
         "tiny": dict(num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                      axes_dims_rope=(4, 6, 6))}


def psnr(a, b) -> float | None:
    """dB; None for identical pictures (JSON has no infinity)."""
    mse = float(((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2).mean())
    return None if mse == 0 else round(10 * np.log10(255.0**2 / mse), 2)


def build(models: Path, size: str) -> list[str]:
    """The models folder; returns the component file names every file variant takes."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    from modules.models.families import flux
    from tests import gguf_fixtures, tiny_flow_models, tiny_models

    folder = models / "Stable-diffusion" / "flux-bench"
    tokenizer = tiny_models.make_tiny_tokenizer(folder / "tokenizer")
    tokenizer_2 = tiny_flow_models.make_t5_tokenizer(folder / "tokenizer_2")
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, joint_attention_dim=tiny_flow_models.T5_WIDTH,
                                         pooled_projection_dim=32, guidance_embeds=False, **SIZES[size])
    with torch.no_grad():  # diffusers' init zeroes the output layers: random ones make a picture that tells
        for p in transformer.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.02)
    text_encoder = CLIPTextModel(tiny_models._text_config(tokenizer, 32, 2, 4, 37, open_clip=False))
    pipe = FluxPipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(**flux.SCHEDULER_SCHNELL),
                        vae=tiny_flow_models._vae16(0.3611, 0.1159), text_encoder=text_encoder, tokenizer=tokenizer,
                        text_encoder_2=tiny_flow_models._t5(tokenizer_2), tokenizer_2=tokenizer_2)
    pipe.to(torch.bfloat16).save_pretrained(str(folder))
    del pipe
    files = tiny_flow_models.make_flux_component_files(folder, models, name="flux-bench")
    parts = tiny_flow_models.flux_file_parts(folder)
    fp8 = {k: v.to(torch.float8_e4m3fn) if v.ndim == 2 else v for k, v in parts["transformer"].items()}
    tiny_flow_models.sidecar(folder, tiny_flow_models._save(fp8, models / "unet" / "flux-bench-fp8.safetensors"))
    for quant in ("Q8_0", "Q4_0"):
        path = gguf_fixtures.write_gguf(parts["transformer"], models / "unet" / f"flux-bench-{quant}.gguf", quant)
        tiny_flow_models.sidecar(folder, path)
    for sub in ("Latent", "GAN"):
        (models / sub).mkdir(exist_ok=True)
    return [files["vae"].name, files["clip_l"].name, files["t5xxl"].name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="mid")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-low-memory-"))
    models = work / "models"
    started = time.perf_counter()
    modules = build(models, args.size)
    build_seconds = time.perf_counter() - started

    from modules.backend import Backend, BackendConfig
    from modules.capabilities.txt2img.request import Txt2ImgRequest
    from modules.devices import DeviceConfig

    backend = Backend(BackendConfig(models_dir=models, outdir=work / "outputs", cache_dir=work / "cache",
                                    devices=DeviceConfig(torch.device("cpu"), torch.bfloat16, torch.float32, "none"),
                                    offline=True))
    variants = {"bf16": ("flux-bench", ()), "fp8": ("flux-bench-fp8", modules),
                "gguf_q8_0": ("flux-bench-Q8_0", modules), "gguf_q4_0": ("flux-bench-Q4_0", modules)}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    pictures: dict[str, np.ndarray] = {}
    from modules.models.refs import CHECKPOINT, ModelRef

    for checkpoint, files in variants.values():  # loads first, outside the timings
        backend.manager.load(ModelRef(CHECKPOINT, checkpoint, tuple(files)))
    for _ in range(args.repeats):
        for name, (checkpoint, files) in variants.items():
            request = Txt2ImgRequest(prompt="a red circle on a white background", steps=4, width=128, height=128,
                                     seed=1, sampler="Euler", cfg_scale=1.0, save_images=False, checkpoint=checkpoint,
                                     forge_additional_modules=list(files))
            t = time.perf_counter()
            result = backend.txt2img(request)
            seconds[name].append(time.perf_counter() - t)
            pictures[name] = np.asarray(result.images[0])
    rows = {r["title"].split(" [")[0]: r for r in backend.cached_models()}
    out: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "load_avg": os.getloadavg()[0],
                 "size": args.size, "compute_dtype": "bfloat16", "image": "128x128, 4 steps, Euler",
                 "build_seconds": round(build_seconds, 1)}
    for name, (checkpoint, _) in variants.items():
        title = next(t for t in rows if t.startswith(checkpoint + ".") or t == checkpoint)
        transformer = next(c for c in rows[title]["components"] if c["name"] == "transformer")
        out[name] = {"stored_as": transformer["dtype"], "transformer_bytes": transformer["bytes"],
                     "seconds_per_image": round(statistics.median(seconds[name]), 2),
                     "psnr_vs_bf16_db": psnr(pictures[name], pictures["bf16"])}
    base = out["bf16"]["transformer_bytes"]
    for name in variants:
        out[name]["bytes_vs_bf16"] = round(out[name]["transformer_bytes"] / base, 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
