"""What a live preview costs against one sampling step, per method (A1111's show_progress_type), on the full-size
SD 1.5 architecture (bench/cold_load.py's configs, random fp32 weights) at 128²: one step is one UNet call on
the batch of 2 (prompt and negative, CFG); each preview decodes the first latent as the app does
(modules/generation/preview.py, resized to the picture). Prints JSON: medians in ms and the % of a step.

    HF_HUB_OFFLINE=1 venv/bin/python bench/preview.py [--size 128] [--repeats 5] [--job-steps 20]

`percent_of_step`: one preview against one step; `percent_of_step_every_5`: that at A1111's every 5 steps with
no budget (live_preview_time_budget 0). Then, per method, a job of --job-steps UNet steps with the app's
defaults (every 5 steps, live_preview_time_budget 5 %, each method's cost known from the runs above as the
app knows it from earlier jobs): `job_previews` shown and `job_percent` = the previews' share of the job's time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cold_load import UNET_CONFIG, VAE_CONFIG  # noqa: E402
from modules.generation import preview  # noqa: E402
from modules.models import families  # noqa: E402
from modules.models.preview_decoders import ApproxNN  # noqa: E402


def median_seconds(run, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--job-steps", type=int, default=20)
    args = parser.parse_args()
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**UNET_CONFIG).eval()
    vae = AutoencoderKL(**VAE_CONFIG).eval()
    taesd = AutoencoderTiny().eval()
    approx = ApproxNN().eval()
    side = args.size // 8
    latents = torch.randn(2, 4, side, side)
    text = torch.randn(2, 77, 768)
    step = median_seconds(lambda: unet(latents, 500, encoder_hidden_states=text), args.repeats)
    family, size = families.by_name("sd1"), (args.size, args.size)
    decoders = {preview.APPROX_CHEAP: None, preview.APPROX_NN: approx, preview.TAESD: taesd, preview.FULL: None}
    rows = {}
    for method, decoder in decoders.items():
        previewer = preview.Previewer(method, 5, decoder)
        seconds = median_seconds(lambda: previewer.image(vae, latents, family, size), args.repeats)
        rows[method] = {"ms": round(seconds * 1000, 2), "percent_of_step": round(100 * seconds / step, 2),
                        "percent_of_step_every_5": round(100 * seconds / step / 5, 2)}
    for method, decoder in decoders.items():
        previewer = preview.Previewer(method, 5, decoder, budget=preview.DEFAULT_BUDGET)
        shown = 0
        for call in range(1, args.job_steps + 1):  # what the step-end callback does after each UNet call
            unet(latents, 500, encoder_hidden_states=text)
            if previewer.due(call, args.job_steps, latents):
                previewer.image(vae, latents, family, size)
                shown += 1
        total = time.perf_counter() - previewer.started
        rows[method].update(job_previews=shown, job_percent=round(100 * previewer.spent / total, 2))
    print(json.dumps({"size": args.size, "step_ms": round(step * 1000, 1), "threads": torch.get_num_threads(),
                      "methods": rows}, indent=2))


if __name__ == "__main__":
    main()
