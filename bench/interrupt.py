"""Time to interrupt a long txt2img step: prints one JSON object.

    venv/bin/python bench/interrupt.py [--size 2048] [--batch 1] [--after 10] [--model zoo-shapes]

Loads the checkpoint (built-in models/Stable-diffusion/zoo-shapes by default), starts a txt2img job of
--size² × --batch with 150 steps, presses Interrupt --after seconds into its first UNet call and waits for
the job to end. Timed:

    interrupt_seconds     press → job finished (no image: the first step had not ended)
    first_step_seconds    with --whole-step: how long one step takes (what a press waited for before)
    longest_check_gap_s   the longest time between two interrupt checks (the worst case for a press)
    checks                how many checks ran before the press (one before each UNet sub-block)
    rss_gb_before/peak    the process's memory before the job and at its peak

    longest_gaps          the three longest, with the module (or attention slice) that ran after the check
    attention_slices      slices of a long self-attention done before the press, and their median time

Nothing is saved. Before this fix a press waited for the step to end: at 2048² with zoo-shapes on the shared
2-core CPU one step did not end within 25 minutes (--whole-step), and one self-attention alone (256 slices of
0.45-0.8 s) takes 2-3.5 minutes, which module hooks alone could not cut.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402
import torch  # noqa: E402

from modules.paths import MODELS_DIR  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--after", type=float, default=10.0, help="seconds into the first UNet call")
    parser.add_argument("--whole-step", action="store_true",
                        help="press only once the first step has ended: times that step and every gap in it")
    parser.add_argument("--model", default="zoo-shapes")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    args = parser.parse_args()

    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config
    from modules.generation.stop_points import stop_points
    from modules.capabilities.txt2img.request import Txt2ImgRequest

    work = Path(tempfile.mkdtemp(prefix="bench-interrupt-"))
    backend = Backend(BackendConfig(models_dir=args.models_dir, outdir=work / "outputs", cache_dir=work / "cache",
                                    devices=device_config("cpu"), offline=True))
    model = backend.manager.load(args.model)
    modules: list[tuple[float, str]] = []  # (when, name) of each UNet stop point reached
    points = set(stop_points(model.pipe.unet))

    def record(name: str):
        def hook(*_) -> None:  # runs just before the job's own check on the same module
            modules.append((time.perf_counter(), name))
        return hook

    handles = [m.register_forward_pre_hook(record(name)) for name, m in model.pipe.unet.named_modules() if m in points]
    request = Txt2ImgRequest(prompt="a red circle on a white background", steps=args.steps, width=args.size,
                             height=args.size, batch_size=args.batch, seed=1, sampler="Euler a",
                             checkpoint=args.model, save_images=False)
    rss_before = psutil.Process().memory_info().rss
    job = backend.new_job("txt2img", owner="bench")
    checks: list[tuple[float, str]] = []  # every check the job made: before a module, or between attention slices
    job_check = job.check

    def check() -> None:
        now = time.perf_counter()
        last = modules[-1] if modules else (0.0, "")
        checks.append((now, last[1] if now - last[0] < 0.001 else f"{last[1]} (a slice)"))
        job_check()

    job.check = check
    answer: dict = {}
    worker = threading.Thread(target=lambda: answer.update(result=backend.txt2img(request, job)))
    worker.start()
    while not checks:
        time.sleep(0.01)
    step_seconds = None
    if args.whole_step:
        while job.step < 1 and worker.is_alive():
            time.sleep(0.01)
        step_seconds = round(time.perf_counter() - checks[0][0], 2)
        print(f"first step: {step_seconds} s, {len(checks)} checks", file=sys.stderr, flush=True)
    else:
        time.sleep(max(args.after - (time.perf_counter() - checks[0][0]), 0))
    pressed, checks_before, steps_before = time.perf_counter(), len(checks), job.step
    job.cancel() if args.whole_step else job.interrupt()  # cancel: no decode of the one-step image
    worker.join()
    finished = time.perf_counter()
    for handle in handles:
        handle.remove()
    times = [t for t, _ in checks] + [finished]
    gaps = [(b - a, name) for (a, name), b in zip(checks, times[1:])]  # (seconds, what ran after the check)
    longest = sorted(gaps, reverse=True)[:3]
    slices = [g for g, name in gaps if name.endswith("(a slice)")]
    print(json.dumps({
        "model": args.model, "size": args.size, "batch": args.batch, "steps": args.steps,
        "threads": torch.get_num_threads(), "first_step_seconds": step_seconds,
        "pressed_after_s": round(pressed - checks[0][0], 2),
        "interrupt_seconds": round(finished - pressed, 2), "longest_check_gap_s": round(longest[0][0], 2),
        "longest_gaps": [[round(g, 2), name] for g, name in longest],
        "attention_slices": len(slices), "attention_slice_median_s": round(sorted(slices)[len(slices) // 2], 3)
        if slices else None,
        "checks": checks_before, "steps_done": steps_before, "state": job.state,
        "images": len(answer["result"].images),
        "rss_gb_before": round(rss_before / 2**30, 2),
        "rss_gb_peak": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }))


if __name__ == "__main__":
    main()
