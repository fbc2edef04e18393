"""txt2img speed: the app against bare diffusers on the same weights; prints one JSON object.

    venv/bin/python bench/txt2img.py [--models zoo,full] [--repeats 5] [--full-repeats 3] [--threads 1]
                                     [--profile] [--compile]

For each model, in one process, alternating so that machine noise hits all alike:

    bare_fp32          a plain diffusers StableDiffusionPipeline on the very modules of our fp32 load (with
                       diffusers' own attention processors: unfused), Euler a (the app's own scheduler config),
                       CFG 7, the same noise and seed: the reference
    ours_fp32_unfused  the app's txt2img through the runner (Backend.run(TXT2IMG, ...)), --precision fp32, QKV
                       projections not fused, saving off: the same work as bare, so the same picture
                       (`same_picture_fp32`) and `ratio_fp32_unfused` is the app's own overhead
    ours_fp32          ... with the app's fused QKV projections (its default on a CPU)
    ours_fp32_save     ... saving on (PNG with its infotext in outputs/; zoo only): the job's answer time, which
                       includes waiting for its files (written after the job leaves the device)
    ours_default       the app on its defaults (--precision auto: the fast path this machine measured at start)
    ours_compiled      with --compile: the app in fp32 with --compile (torch.compile, inductor); `compile_warmup_s` is
                       its first job (the compile), `psnr_compiled_db` its picture against ours_fp32's

Each run is timed in wall-clock seconds (`*_s`) and in this process's CPU seconds (`*_cpu_s`, time.process_time:
every thread of the process, the file-writing one too). With --threads 1 a run's CPU time is its work whatever
else the machine runs, so `cpu_ratio_*` is the overhead figure that other processes do not move (`cpu_ratio_*_paired`:
the median of each round's ratio, steadier on a shared machine than the ratio of medians); `ratio_*` (wall)
is what a user waits. `preview_share_percent`: the share of the default path's job time spent in its live
previews (the app's default method, every 5 steps, 5 % budget; `previews_per_job` of them). Medians over --repeats (zoo) / --full-repeats (full); ratios = ours / bare_fp32.
`save_ms` / `save_cpu_ms`: the median over rounds of (saving on - saving off) in the same round (paired: noise
that hits a round hits both); `save_answer_ms` what saving itself added to the job's answer, timed inside the
job (`save_in_job_ms`: naming the file and handing it over while the job holds the device; `save_wait_ms`:
waiting for the write after it left; `save_answer_cpu_ms` the same in the job thread's CPU time, which a
busy machine's preemptions do not enter: a 32² write takes 0.3 ms, but 8-45 ms whenever the scheduler
hands the core to another process in the middle of it); `save_parts_ms` times each part of one save on its own (PNG encode, temp file,
write, fsync, rename; medians of 50). `psnr_default_db` compares the default path's picture with the fp32 one
at the same seed. Models: `zoo` is the built-in zoo-shapes at 32², 20 steps; `full` a full-size SD
1.5-architecture file with random weights (built as bench/cold_load.py does, under --dir) at 128², 8 steps.
--profile prints the top of a cProfile of one fp32 run of ours (stderr). Targets: ratio_fp32_unfused <= 1.03,
save_ms <= 10 (zoo), ratio_default <= 0.67 (full). On a machine other jobs share, --threads 1 keeps torch's
threads from waiting on each other (2 threads on 2 busy cores ran 20x slower).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
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

PROMPT = "a red circle on a white background"
SEED = 1
CASES = {"zoo": dict(size=32, steps=20), "full": dict(size=128, steps=8)}


def psnr(a, b) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mse = float(((x - y) ** 2).mean())
    return round(10 * math.log10(255**2 / mse), 2) if mse else float("inf")


def backend_for(models_dir: Path, work: Path, precision: str, compile: bool = False, fused: bool = True):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    devices = device_config("cpu", precision=precision, cache_dir=work.parent / "cache", compile=compile,
                            fused_projections=fused)
    return Backend(BackendConfig(models_dir=models_dir, outdir=work / "outputs", cache_dir=work / "cache",
                                 devices=devices, offline=True))


def ours(backend, checkpoint: str, size: int, steps: int, save: bool):
    from modules.capabilities.txt2img import TXT2IMG, Txt2ImgRequest

    request = Txt2ImgRequest(prompt=PROMPT, steps=steps, width=size, height=size, seed=SEED, sampler="Euler a",
                             cfg_scale=7, checkpoint=checkpoint, save_images=save)
    job = backend.new_job("txt2img", owner="bench")
    return lambda: backend.run(TXT2IMG, request, job).images[0]


def bare(model, size: int, steps: int):
    """A plain StableDiffusionPipeline on the loaded modules, scheduler built as the app builds Euler a."""
    from diffusers import StableDiffusionPipeline

    from modules.capabilities.txt2img.run import initial_noise
    from modules.generation.preview import to_pil
    from modules.generation.samplers import find_sampler

    family = model.info.architecture.spec
    p = model.pipe
    pipe = StableDiffusionPipeline(vae=p.vae, text_encoder=p.text_encoder, tokenizer=p.tokenizer, unet=p.unet,
                                   scheduler=find_sampler("Euler a").build(family.scheduler_config(model.scheduler_config)),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    scale = pipe.vae_scale_factor

    def run():
        generator = torch.Generator("cpu").manual_seed(SEED)
        latents = initial_noise([generator], (p.unet.config.in_channels, size // scale, size // scale))
        with torch.inference_mode():
            out = pipe(PROMPT, num_inference_steps=steps, guidance_scale=7, width=size, height=size,
                       latents=latents, generator=generator, output_type="pt")
        return to_pil(out.images * 2 - 1)[0]
    run.prepare = lambda: _plain_attention(p.unet)
    return run


def _plain_attention(unet):
    """diffusers' own processor on every attention that has our fused one (the same modules serve both)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from modules.models.fused_qkv import FusedProjections

    processors = unet.attn_processors
    if any(isinstance(p, FusedProjections) for p in processors.values()):
        unet.set_attn_processor({name: AttnProcessor2_0() if isinstance(p, FusedProjections) else p
                                 for name, p in processors.items()})
        return lambda: unet.set_attn_processor(processors)
    return None


PREVIEWS = {"seconds": 0.0, "count": 0}  # the live previews of the run being timed (count_previews)


def count_previews() -> None:
    """Time every live preview the app's jobs make (modules/generation/preview.py), on their default method,
    frequency and budget: the share of a job's time they take, measured in the job itself."""
    from modules.generation import preview

    image = preview.Previewer.image

    def timed_image(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return image(self, *args, **kwargs)
        finally:
            PREVIEWS["seconds"] += time.perf_counter() - started
            PREVIEWS["count"] += 1
    preview.Previewer.image = timed_image


SAVING = {"in_job": 0.0, "wait": 0.0, "cpu": 0.0}  # the run being timed: saving's own seconds (count_saving)


def count_saving() -> None:
    """Time what saving adds to a job's answer in the job itself: naming the file and handing it to the writer
    while the job holds the device (Hooks.save_image), then waiting for the writes after it leaves
    (BackgroundSaves.wait). A sum of what the job did, so the machine's other load does not enter it."""
    from modules.capabilities import background_saves, scripting

    def timing(owner, name: str, part: str):
        real = getattr(owner, name)

        def timed_call(*args, **kwargs):
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return real(*args, **kwargs)
            finally:
                SAVING[part] += time.perf_counter() - started
                SAVING["cpu"] += time.thread_time() - cpu  # a single image is written in this thread
        setattr(owner, name, timed_call)
    timing(scripting.Hooks, "save_image", "in_job")
    timing(background_saves.BackgroundSaves, "wait", "wait")


def timed(fn) -> tuple[float, float, object]:
    undo = fn.prepare() if hasattr(fn, "prepare") else None  # untimed: what makes the modules bare
    PREVIEWS.update(seconds=0.0, count=0)
    SAVING.update(in_job=0.0, wait=0.0, cpu=0.0)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        value = fn()
        return time.perf_counter() - wall, time.process_time() - cpu, value
    finally:
        if undo is not None:
            undo()


def save_parts(image, infotext: str, folder: Path, repeats: int = 50) -> dict:
    """Each part of one PNG save on its own, milliseconds (medians): where a save's time goes."""
    from modules.images import png_info

    folder.mkdir(parents=True, exist_ok=True)
    times: dict[str, list[float]] = {k: [] for k in ("encode", "temp_file", "write", "fsync", "rename", "dir_fsync")}
    for i in range(repeats):
        clock = time.perf_counter()

        def lap(name):
            nonlocal clock
            now = time.perf_counter()
            times[name].append((now - clock) * 1000)
            clock = now
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=png_info(infotext), compress_level=1)
        lap("encode")
        fd, tmp = tempfile.mkstemp(prefix=".saving-", suffix=".png", dir=folder)
        lap("temp_file")
        os.write(fd, buffer.getvalue())
        lap("write")
        os.fsync(fd)
        lap("fsync")
        os.close(fd)
        os.replace(tmp, folder / f"{i:05d}.png")
        lap("rename")
        dir_fd = os.open(folder, os.O_RDONLY)
        os.fsync(dir_fd)
        os.close(dir_fd)
        lap("dir_fsync")
    return {k: round(statistics.median(v), 3) for k, v in times.items()}


def measure(name: str, models_dir: Path, checkpoint: str, repeats: int, work: Path, profile: bool,
            compile: bool = False) -> dict:
    size, steps = CASES[name]["size"], CASES[name]["steps"]
    fp32 = backend_for(models_dir, work / "fp32", "fp32")
    unfused = backend_for(models_dir, work / "unfused", "fp32", fused=False)
    started = time.perf_counter()
    default = backend_for(models_dir, work / "default", "auto")
    default_choice = default.config.devices.describe()
    model = unfused.manager.load(checkpoint)
    fp32.manager.load(checkpoint)
    default.manager.load(checkpoint)
    load_s = time.perf_counter() - started
    runs = {"bare_fp32": bare(model, size, steps), "ours_fp32_unfused": ours(unfused, checkpoint, size, steps, False),
            "ours_fp32": ours(fp32, checkpoint, size, steps, False)}
    if name == "zoo":
        runs["ours_fp32_save"] = ours(fp32, checkpoint, size, steps, True)
    runs["ours_default"] = ours(default, checkpoint, size, steps, False)
    result: dict = {"model": checkpoint, "size": size, "steps": steps, "cfg": 7, "sampler": "Euler a",
                    "default_precision": default_choice}
    if compile:
        compiled = backend_for(models_dir, work / "compiled", "fp32", compile=True)
        compiled.manager.load(checkpoint)
        runs["ours_compiled"] = ours(compiled, checkpoint, size, steps, False)
    pictures, first_s = {}, {}
    for key, fn in runs.items():  # warm-up: first calls build caches (and compile)
        first_s[key], _, pictures[key] = timed(fn)
    if compile:
        result["compile_warmup_s"] = round(first_s["ours_compiled"], 1)
    times: dict[str, list[float]] = {key: [] for key in runs}
    cpu: dict[str, list[float]] = {key: [] for key in runs}
    previews: list[tuple[int, float, float]] = []  # the default path's jobs: (previews, their seconds, job's)
    saving: list[tuple[float, float, float]] = []  # saving jobs: (s saving in the job, waiting for writes, CPU s)
    for _ in range(repeats):
        for key, fn in runs.items():
            seconds, cpu_seconds, pictures[key] = timed(fn)
            times[key].append(seconds)
            cpu[key].append(cpu_seconds)
            if key == "ours_default":
                previews.append((PREVIEWS["count"], PREVIEWS["seconds"], seconds))
            if key == "ours_fp32_save":
                saving.append((SAVING["in_job"], SAVING["wait"], SAVING["cpu"]))
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(runs["ours_fp32"])
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
        print(text.getvalue(), file=sys.stderr)
    for key in runs:
        result[f"{key}_s"] = round(statistics.median(times[key]), 4)
        result[f"{key}_cpu_s"] = round(statistics.median(cpu[key]), 4)
    for key in runs:
        if key != "bare_fp32":
            label = key.removeprefix("ours_")
            result[f"ratio_{label}"] = round(result[f"{key}_s"] / result["bare_fp32_s"], 3)
            result[f"cpu_ratio_{label}"] = round(result[f"{key}_cpu_s"] / result["bare_fp32_cpu_s"], 3)
            # Paired: the median of each round's ours/bare, so a slow spell that hits one round hits both sides.
            result[f"cpu_ratio_{label}_paired"] = round(statistics.median(
                a / b for a, b in zip(cpu[key], cpu["bare_fp32"])), 3)
    if "ours_fp32_save" in runs:
        result["save_ms"] = round(1000 * statistics.median(
            a - b for a, b in zip(times["ours_fp32_save"], times["ours_fp32"])), 1)
        result["save_cpu_ms"] = round(1000 * statistics.median(
            a - b for a, b in zip(cpu["ours_fp32_save"], cpu["ours_fp32"])), 1)
        result["save_in_job_ms"] = round(1000 * statistics.median(p[0] for p in saving), 2)
        result["save_wait_ms"] = round(1000 * statistics.median(p[1] for p in saving), 2)
        result["save_answer_ms"] = round(1000 * statistics.median(p[0] + p[1] for p in saving), 2)
        result["save_answer_cpu_ms"] = round(1000 * statistics.median(p[2] for p in saving), 2)
        result["save_parts_ms"] = save_parts(pictures["ours_fp32"], f"{PROMPT}\nSteps: {steps}, Sampler: Euler a, "
                                             f"CFG scale: 7, Seed: {SEED}, Size: {size}x{size}, Model: {checkpoint}",
                                             work / "save-parts")
    result["previews_per_job"] = previews[0][0]
    result["preview_ms"] = round(1000 * statistics.median(p[1] for p in previews), 2)
    result["preview_share_percent"] = round(100 * statistics.median(p[1] / p[2] for p in previews), 3)
    result["same_picture_fp32"] = psnr(pictures["ours_fp32_unfused"], pictures["bare_fp32"])
    result["psnr_fused_db"] = psnr(pictures["ours_fp32"], pictures["ours_fp32_unfused"])
    result["psnr_default_db"] = psnr(pictures["ours_default"], pictures["ours_fp32"])
    if compile:
        result["psnr_compiled_db"] = psnr(pictures["ours_compiled"], pictures["ours_fp32"])
    result["all_s"] = {key: [round(v, 3) for v in values] for key, values in times.items()}
    result["all_cpu_s"] = {key: [round(v, 3) for v in values] for key, values in cpu.items()}
    result["load_all_s"] = round(load_s, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="zoo,full")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each, zoo-shapes")
    parser.add_argument("--full-repeats", type=int, default=3, help="timed runs of each, full-size file")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/zoo-bench"), help="where the full-size file is built")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own, as the app)")
    parser.add_argument("--profile", action="store_true", help="cProfile one run of ours (fp32) to stderr")
    parser.add_argument("--compile", action="store_true", help="also the app with --compile (fp32, inductor)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from modules.models.loader import quiet_library_progress_bars
    from modules.paths import MODELS_DIR

    quiet_library_progress_bars()
    count_previews()
    count_saving()
    out: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "load_avg": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench-txt2img-") as tmp:
        work = Path(tmp)
        for name in args.models.split(","):
            if name == "zoo":
                models_dir, checkpoint = MODELS_DIR, "zoo-shapes"
            else:
                from bench.cold_load import build_checkpoint

                path = build_checkpoint(args.dir)
                models_dir = work / "full-models"
                (models_dir / "Stable-diffusion").mkdir(parents=True)
                for item in (path, path.with_name(path.stem + ".config")):
                    (models_dir / "Stable-diffusion" / item.name).symlink_to(item)
                checkpoint = path.name
            repeats = args.repeats if name == "zoo" else args.full_repeats
            out[name] = measure(name, models_dir, checkpoint, repeats, work / name, args.profile, args.compile)
            print(json.dumps({name: out[name]}), file=sys.stderr, flush=True)
    out["load_avg_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
