"""Retrain the whole built-in zoo from scratch, on both CPU cores at once.

    HF_HUB_OFFLINE=1 python -m modules.zoo.train.all [--out-dir DIR] [--export-dir DIR]

Each training runs on one thread (a small model gains little from a second one), so two run side by
side: the text-to-image model (then its two fine-tunes) on one core; the β-VAE, then the GAN, on the
other. Writes each one's log under --out-dir, exports into --export-dir (default: models/, what the app
ships) and prints the wall-clock time of each and of the whole. Rerunning resumes every training from its checkpoint.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from modules.paths import MODELS_DIR, OUTPUTS_DIR

# The recipes the shipped weights come from (each script's own defaults, except where written here).
TXT2IMG = ["modules.zoo.train.txt2img", "--ae-steps", "2000", "--steps", "3500"]
# Then fine-tunes of that pipeline, each from the export of the one before (guidance.py has why and what else was
# tried). First the guidance smoothness term (same latent space: --freeze-encoder), so that PLMS and UniPC draw the
# prompt at CFG 7: 500 steps, then 200 at a lower learning rate.
SMOOTH = ["--freeze-encoder", "--ae-steps", "0", "--guidance-smoothness", "1.5", "--smoothness-from", "300",
          "--sample-every", "100"]
# Then the autoencoder learns that a latent step past one picture, away from its recolouring, decodes to the same
# step in pixels (so guidance away from a negative colour word such as "green" keeps a red circle red), and the UNet
# and text encoder follow it onto that latent space, with the smoothness term on.
RECOLOURING = ["--extrapolation-weight", "1", "--extrapolation-max", "3", "--extrapolation-twins", "1"]
TXT2IMG_FINE_TUNES = [
    ("txt2img-smooth", [*SMOOTH, "--steps", "500", "--lr", "2e-4"]),
    ("txt2img-settle", [*SMOOTH, "--steps", "200", "--lr", "5e-5"]),
    ("txt2img-recolour", ["--ae-steps", "600", "--ae-lr", "3e-4", "--steps", "0", "--sample-every", "200", *RECOLOURING]),
    ("txt2img-follow", ["--freeze-encoder", "--ae-steps", "0", "--steps", "800", "--lr", "2e-4", "--guidance-smoothness",
                        "1.25", "--smoothness-from", "300", "--sample-every", "200", *RECOLOURING]),
    # The decoder alone at a lower learning rate: sharper edges, same latent space.
    ("txt2img-decoder", ["--freeze-encoder", "--ae-steps", "250", "--ae-lr", "1e-4", "--steps", "0", *RECOLOURING]),
]
BETA_VAE = ["modules.zoo.train.beta_vae"]
GAN = ["modules.zoo.train.gan"]
# --smoke: toy sizes and a few steps, to check the whole run end to end in seconds.
SMOKE = {"txt2img": ["--size", "tiny", "--ae-steps", "3", "--steps", "3", "--batch", "4", "--ae-batch", "4",
                     "--images", "32", "--sample-every", "3"],
         **{name: ["--size", "tiny", "--steps", "2", "--ae-steps", "0", "--batch", "4", "--images", "32",
                   "--sample-every", "2", "--smoothness-batch", "2"] for name in ("txt2img-smooth", "txt2img-settle")},
         **{name: ["--size", "tiny", "--ae-steps", "2", "--ae-batch", "4", "--images", "32", "--sample-every", "2"]
            for name in ("txt2img-recolour", "txt2img-decoder")},
         "txt2img-follow": ["--size", "tiny", "--steps", "2", "--batch", "4", "--images", "32", "--sample-every", "2",
                            "--smoothness-batch", "2"],
         "beta-vae": ["--steps", "4", "--batch", "8", "--images", "64", "--latent-dim", "8", "--channels", "8,16",
                      "--sample-every", "4"],
         "gan": ["--steps", "4", "--batch", "8", "--images", "64", "--channels", "8,8,8", "--d-channels", "8,8,8",
                 "--sample-every", "4"]}


def exports(export_dir: Path) -> dict[str, Path]:
    return {"txt2img": export_dir / "Stable-diffusion" / "zoo-shapes",
            "beta_vae": export_dir / "Latent" / "shapes-beta-vae.safetensors",
            "gan": export_dir / "GAN" / "shapes-gan.safetensors"}


def run(name: str, module_args: list[str], out: Path, export: Path, times: dict, failures: list) -> None:
    out.mkdir(parents=True, exist_ok=True)
    export.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", *module_args, "--out", str(out / name), "--export", str(export), "--threads", "1"]
    started = time.time()
    with open(out / f"{name}.log", "wb") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    times[name] = round(time.time() - started)
    print(f"{name}: {'done' if code == 0 else f'FAILED (exit {code}), see {out / name}.log'} in {times[name]} s",
          flush=True)
    if code:
        failures.append(name)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", type=Path, default=OUTPUTS_DIR / "zoo-train", help="checkpoints, samples, logs")
    p.add_argument("--export-dir", type=Path, default=MODELS_DIR, help="models/ layout the weights are written into")
    p.add_argument("--smoke", action="store_true", help="toy sizes, a few steps each (checks the run, not the models)")
    args = p.parse_args(argv)
    extra = SMOKE if args.smoke else {}
    targets = exports(args.export_dir)
    times: dict[str, int] = {}
    failures: list[str] = []
    started = time.time()

    def second_core():
        run("beta-vae", BETA_VAE + extra.get("beta-vae", []), args.out_dir, targets["beta_vae"], times, failures)
        run("gan", GAN + extra.get("gan", []), args.out_dir, targets["gan"], times, failures)

    other = threading.Thread(target=second_core)
    other.start()
    run("txt2img", TXT2IMG + extra.get("txt2img", []), args.out_dir, targets["txt2img"], times, failures)
    for name, stage in TXT2IMG_FINE_TUNES:
        if any(failed.startswith("txt2img") for failed in failures):
            break  # a fine-tune needs the stage before it
        run(name, [TXT2IMG[0], "--init", str(targets["txt2img"]), *stage, *extra.get(name, [])],
            args.out_dir, targets["txt2img"], times, failures)
    other.join()
    times["total_wall_clock"] = round(time.time() - started)
    print(json.dumps({"seconds": times, "failed": failures}, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
