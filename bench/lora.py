"""Switching LoRAs on a cached checkpoint, against reloading the checkpoint.

Builds once (under --dir, default /tmp/zoo-bench/) the full-size SD 1.5-architecture random-weight checkpoint
of bench/cold_load.py (~2.1 GB, fp16) and two kohya-layout LoRAs for it (rank --rank on every attention
projection of the UNet and text encoder, as trainers write them), then through the backend's manager:

    reload_s          the checkpoint dropped from the cache and loaded again (median of --repeats)
    first_attach_s    a LoRA's first use on the cached checkpoint: file read, keys converted, adapter attached
    switch_s          then switching between the two attached LoRAs, as consecutive jobs do (median of 20)
    no_lora_s         a job without LoRAs after them: adapters disabled
    switch_vs_reload  switch_s / reload_s: target <= 0.10

Prints one JSON object.

    venv/bin/python bench/lora.py [--device cpu|cuda] [--rank 16] [--repeats 2] [--dir /tmp/zoo-bench]
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

from bench.cold_load import CHECKPOINT_NAME, TEXT_CONFIG, UNET_CONFIG, build_checkpoint  # noqa: E402
from modules import quiet_log  # noqa: E402


def build_lora(path: Path, rank: int, seed: int) -> Path:
    """A kohya-layout LoRA for the SD 1.5 architecture (diffusers module names, as kohya's SD 1.x LoRAs)."""
    if path.is_file():
        return path
    import torch
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    with init_empty_weights():
        unet = UNet2DConditionModel(**UNET_CONFIG)
        text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for prefix, model, ends in (("lora_unet_", unet, ("to_q", "to_k", "to_v", "to_out.0")),
                                ("lora_te_", text_encoder, ("q_proj", "k_proj", "v_proj", "out_proj"))):
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and name.endswith(ends):
                name = name if prefix == "lora_unet_" or name.startswith("text_model.") else "text_model." + name
                key = prefix + name.replace(".", "_")
                state[f"{key}.lora_down.weight"] = torch.empty(rank, module.in_features, dtype=torch.float16).normal_(
                    0, 0.02, generator=generator)
                state[f"{key}.lora_up.weight"] = torch.empty(module.out_features, rank, dtype=torch.float16).normal_(
                    0, 0.02, generator=generator)
                state[f"{key}.alpha"] = torch.tensor(float(rank), dtype=torch.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(state, str(partial))
    partial.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dir", default="/tmp/zoo-bench")
    args = parser.parse_args()
    quiet_log.install()  # as webui.py does: no load reports of one adapter's weights "missing" from another

    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config
    from modules.networks.loras import LoraUse

    folder = Path(args.dir)
    checkpoint = build_checkpoint(folder)
    models = folder / "lora-models"
    (models / "Stable-diffusion").mkdir(parents=True, exist_ok=True)
    for item in (checkpoint, checkpoint.with_name(checkpoint.stem + ".config")):
        link = models / "Stable-diffusion" / item.name
        if not link.exists():
            link.symlink_to(item)
    loras = [build_lora(models / "Lora" / f"bench-{name}.safetensors", args.rank, seed)
             for seed, name in enumerate(("a", "b"))]
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-lora-"))
    backend = Backend(BackendConfig(models_dir=models, outdir=work / "outputs", cache_dir=work / "cache",
                                    devices=device_config(args.device), offline=True))
    manager, title = backend.manager, Path(CHECKPOINT_NAME).stem
    manager.load(title)  # the hash and the page cache warm, as for any later reload

    reloads = []
    for _ in range(args.repeats):
        manager.unload_all()
        started = time.perf_counter()
        manager.load(title)
        reloads.append(time.perf_counter() - started)

    uses = [LoraUse(path.stem, path, 0.8, 0.8) for path in loras]
    for path in loras:
        manager.lora_hash(path)  # hashed once per file version, like the checkpoint: not part of a switch
    with manager.use(title) as model:
        first = []
        for use in uses:
            started = time.perf_counter()
            manager.use_loras(model, [use])
            first.append(time.perf_counter() - started)
        switches = []
        for i in range(20):
            started = time.perf_counter()
            manager.use_loras(model, [uses[i % 2]])
            switches.append(time.perf_counter() - started)
        started = time.perf_counter()
        manager.use_loras(model, [])
        no_lora = time.perf_counter() - started
        lora_bytes = sum(c.bytes for c in model.components.values())
    reload_s, switch_s = statistics.median(reloads), statistics.median(switches)
    print(json.dumps({
        "device": str(backend.config.devices.device), "checkpoint": CHECKPOINT_NAME,
        "lora_rank": args.rank, "lora_file_mb": round(loras[0].stat().st_size / 1e6, 1),
        "reload_s": round(reload_s, 3), "first_attach_s": [round(s, 3) for s in first],
        "switch_s": round(switch_s, 4), "no_lora_s": round(no_lora, 4),
        "switch_vs_reload": round(switch_s / reload_s, 4), "target": "<= 0.10",
        "file_reads": manager.loras.loads, "checkpoint_bytes_with_adapters": lora_bytes,
    }, indent=1))


if __name__ == "__main__":
    main()
