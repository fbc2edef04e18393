"""A fresh machine's first picture: `python webui.py` with only the built-in models, then
"a red circle on a white background" at the UI's defaults (Euler a, 20 steps, CFG 7, 32×32).

Prints one JSON object: seconds from starting webui.py until it serves, and from asking for the
image until it arrives — both with the default model loaded at start (the default) and with
--skip-load-model-at-start (the request pays the load) — and the dominant colour of what was drawn.
The issue's target: a recognisable red circle within 10 s of asking.

    venv/bin/python bench/fresh_start.py [--seeds 3]
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.app_process import AppProcess  # noqa: E402

PROMPT = "a red circle on a white background"


def ask(url: str, seed: int) -> tuple[float, object]:
    import numpy as np
    import requests
    from PIL import Image

    body = {"prompt": PROMPT, "negative_prompt": "", "sampler_name": "Euler a", "steps": 20, "cfg_scale": 7,
            "width": 32, "height": 32, "seed": seed}
    started = time.perf_counter()
    answer = requests.post(url + "/sdapi/v1/txt2img", json=body, timeout=300)
    seconds = time.perf_counter() - started
    answer.raise_for_status()
    image = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0]))).convert("RGB")
    return seconds, np.asarray(image)


def run(extra_flags: list[str], seeds: int) -> dict:
    from tests.test_zoo_builtin_txt2img import dominant_foreground_colour

    # The user's own launch: all cores, as torch picks by default (AppProcess pins tests to one).
    env = {"OMP_NUM_THREADS": str(os.cpu_count() or 1)}
    started = time.perf_counter()
    with AppProcess("--api", *extra_flags, env=env) as app:
        serving = time.perf_counter() - started
        results = [ask(app.url, seed) for seed in range(seeds)]
    return {"startup_s": round(serving, 2),
            "first_image_s": round(results[0][0], 2),
            "next_images_s": [round(s, 2) for s, _ in results[1:]],
            "dominant_colours": [dominant_foreground_colour(image.astype(float), "white") for _, image in results]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    result = {
        "prompt": PROMPT,
        "model_loaded_at_start": run([], args.seeds),
        "model_loaded_on_request": run(["--skip-load-model-at-start"], args.seeds),
        "target": "a red circle within 10 s of asking",
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
