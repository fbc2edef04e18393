"""Prompt editing and alternation: what the parser and the switching cost.

    parse_*_ms     prompt_schedule() on prompts at the 20 000-character request limit and beyond (hostile
                   nesting, thousands of brackets), 150 steps: milliseconds, or "refused" (InvalidRequest)
    sample_*_s     a 20-step txt2img job on the built-in zoo-shapes model (32 px, CPU), plain prompt vs. the
                   same prompt with `[red:blue:0.5]` and `[red|blue]`: the switching's overhead on a whole job
    overhead_*     sample_edit_s / sample_plain_s

Each job figure is the median of --repeats runs, interleaved. Prints one JSON object.

    venv/bin/python bench/prompt_editing.py [--repeats 5]
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

PARSE_CASES = {
    "realistic_20k": ", ".join(f"(word{i}:1.1) [thing{i}:other{i}:0.{i % 9 + 1}]" for i in range(40)).ljust(20_000),
    "nested_100k": "[" * 100_000 + "x" + "]" * 100_000,
    "round_100k": "(" * 100_000 + "x:1.2" + ")" * 100_000,
    "open_100k": "[a:" * 100_000,
    "alternation_10k_options": "[" + "|".join(f"w{i}" for i in range(10_000)) + "]",
    "edits_5000": "[a:b:3]" * 5000,
}
PROMPTS = {"plain": "a red circle on a white background",
           "edit": "a [red:blue:0.5] circle on a white background",
           "alternate": "a [red|blue] circle on a white background"}


def parse_figures() -> dict:
    from modules.errors import InvalidRequest
    from modules.generation.prompt_schedule import prompt_schedule

    figures = {}
    for name, prompt in PARSE_CASES.items():
        started = time.perf_counter()
        try:
            prompt_schedule(prompt, 150)
            figures[f"parse_{name}_ms"] = round((time.perf_counter() - started) * 1000, 1)
        except InvalidRequest:
            figures[f"parse_{name}_ms"] = f"refused in {(time.perf_counter() - started) * 1000:.1f} ms"
    return figures


def sample_figures(repeats: int) -> dict:
    from modules.backend import Backend, BackendConfig
    from modules.capabilities.txt2img.request import Txt2ImgRequest
    from modules.devices import device_config
    from modules.paths import MODELS_DIR

    work = Path(tempfile.mkdtemp(prefix="prompt-editing-bench-"))
    backend = Backend(BackendConfig(models_dir=MODELS_DIR, outdir=work / "outputs", cache_dir=work / "cache",
                                    devices=device_config("cpu"), offline=True))

    def job(prompt: str) -> float:
        started = time.perf_counter()
        backend.txt2img(Txt2ImgRequest(prompt=prompt, steps=20, width=32, height=32, seed=1, sampler="Euler",
                                       checkpoint="zoo-shapes", save_images=False))
        return time.perf_counter() - started

    job(PROMPTS["plain"])  # load the model
    times: dict[str, list[float]] = {name: [] for name in PROMPTS}
    for _ in range(repeats):
        for name, prompt in PROMPTS.items():
            times[name].append(job(prompt))
    medians = {name: statistics.median(values) for name, values in times.items()}
    figures = {f"sample_{name}_s": round(value, 3) for name, value in medians.items()}
    figures["overhead_edit"] = round(medians["edit"] / medians["plain"], 3)
    figures["overhead_alternate"] = round(medians["alternate"] / medians["plain"], 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps({**parse_figures(), **sample_figures(args.repeats)}, indent=1))


if __name__ == "__main__":
    main()
