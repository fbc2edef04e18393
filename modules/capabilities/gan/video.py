"""Interpolation videos between seeds: GIF (Pillow) and MP4 (the ffmpeg binary bundled with imageio-ffmpeg).

Between two key seeds the frames walk a straight line in w (lerp: the mapping network makes w
space the one where straight lines look smooth), or a great circle in z (slerp: z is Gaussian,
so a straight line would pass through low-norm, untypical latents). Frame f of a transition is
at t = f / frames, so each key seed appears exactly once; a loop ends with the way back to the first.
"""
from __future__ import annotations

import datetime
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modules.atomic_files import replacing
from modules.errors import InvalidRequest
from modules.capabilities.gan import run as gan
from modules.capabilities.gan.request import GanVideoRequest
from modules.generation.infotext import format_infotext
from modules.generation.seeds import seed_latent
from modules.jobs import Job

_numbering_lock = threading.Lock()
_NUMBERED = re.compile(r"^(\d{5})-")


@dataclass
class GanVideoResult:
    request: GanVideoRequest
    model_title: str
    path: Path
    frame_count: int
    infotext: str


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return a + t[:, None] * (b - a)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of rows a, b [D] at t [T] (norms interpolated linearly)."""
    a64, b64, t64 = a.double(), b.double(), t.double()[:, None]
    na, nb = a64.norm(), b64.norm()
    cos = torch.clamp(torch.dot(a64 / na, b64 / nb), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:
        return lerp(a64, b64, t64[:, 0]).to(a.dtype)
    direction = (torch.sin((1 - t64) * omega) * a64 / na + torch.sin(t64 * omega) * b64 / nb) / torch.sin(omega)
    return (direction * ((1 - t64) * na + t64 * nb)).to(a.dtype)


def key_pairs(count: int, loop: bool) -> list[tuple[int, int]]:
    pairs = [(k, k + 1) for k in range(count - 1)]
    return pairs + [(count - 1, 0)] if loop else pairs


def frame_images(request: GanVideoRequest, generator, job: Job | None = None) -> torch.Tensor:
    """All frames [T,3,H,W] in [-1,1] on the CPU."""
    caps = gan.capabilities(generator)
    (class_index,) = gan.class_indices(request.class_name, caps)
    gan.check_layer_options(request, caps)
    gan.check_stylegan_options(request, caps)
    z_keys = torch.stack([seed_latent(s, caps.z_dim, caps.seed_rule) for s in request.seeds])
    options = gan.synthesis_options(caps, request.noise_mode, request.translate, request.rotate)
    mix_z = None if request.style_mix_seed is None else \
        seed_latent(request.style_mix_seed, caps.z_dim, caps.seed_rule)[None]
    layer_options = {"truncation_cutoff": request.truncation_cutoff, "mix_from": request.style_mix_from,
                     "mix_to": request.style_mix_to, "options": options}
    t = torch.arange(request.frames, dtype=torch.float32) / request.frames
    pairs = key_pairs(len(z_keys), request.loop)
    if job is not None:
        job.start(1, len(pairs))
    frames = []
    for n, (a, b) in enumerate(pairs):
        if job is not None:
            job.check()
        last = not request.loop and n == len(pairs) - 1
        steps = torch.cat([t, torch.ones(1)]) if last else t  # an open path ends on its last seed
        classes = torch.full((len(steps),), class_index, dtype=torch.long)
        noise_seeds = [request.seeds[0]] * len(steps)  # random noise: the first key seed's, so frames do not flicker
        if request.space == "z":
            z = slerp(z_keys[a], z_keys[b], steps)
            frames.append(gan.synthesize(generator, z, classes, request.truncation_psi, mix_z=mix_z,
                                         seeds=noise_seeds, **layer_options))
        else:
            w_keys = gan.mapped(generator, z_keys[[a, b]], classes[:2])
            mix_w = None if mix_z is None else gan.mapped(generator, mix_z.expand(len(steps), -1), classes)
            frames.append(gan.synthesize_w(generator, lerp(w_keys[0], w_keys[1], steps.to(w_keys.device)), classes,
                                           request.truncation_psi, mix_w=mix_w, seeds=noise_seeds, **layer_options))
        if job is not None:
            job.step = n + 1
    return torch.cat(frames)


def to_frames(images: torch.Tensor, size: int) -> np.ndarray:
    """uint8 [T, size, size, 3], upscaled by nearest neighbour so the pixels stay crisp."""
    images = torch.nn.functional.interpolate(images, size=(size, size), mode="nearest")
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def mp4_available() -> bool:
    try:
        import imageio_ffmpeg
        return Path(imageio_ffmpeg.get_ffmpeg_exe()).is_file()
    except Exception:  # noqa: BLE001 - no wheel or no bundled binary: GIF only
        return False


def write_video(frames: np.ndarray, path: Path, fps: int) -> None:
    """Write atomically: a temp file beside ``path``, then a rename."""
    import imageio.v2 as imageio

    with replacing(path) as tmp:
        if path.suffix == ".gif":
            imageio.mimwrite(tmp, list(frames), format="GIF", duration=1000 / fps, loop=0)
        else:
            with imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                                    pixelformat="yuv420p", macro_block_size=16) as writer:
                for frame in frames:
                    writer.append_data(frame)


def save_video(frames: np.ndarray, outdir: Path | None, request: GanVideoRequest) -> Path:
    """outputs/gan-videos/YYYY-MM-DD/NNNNN-FIRST-LAST.ext, or a temp file when not saving. The number is
    taken and the file written under one lock: no empty file claims a name first, so a crash (kill -9)
    leaves only a ".saving-<pid>-*" temp file, which the next start removes (modules/leftovers.py)."""
    name = f"{request.seeds[0]}-{request.seeds[-1]}.{request.format}"
    if not request.save or outdir is None:
        path = Path(tempfile.mkdtemp(prefix="gan-video-")) / name
        write_video(frames, path, request.fps)
        return path
    folder = Path(outdir) / "gan-videos" / datetime.date.today().isoformat()  # as A1111's txt2img-grids
    folder.mkdir(parents=True, exist_ok=True)
    with _numbering_lock:
        numbers = [int(m.group(1)) for f in os.listdir(folder) if (m := _NUMBERED.match(f))]
        path = folder / f"{max(numbers, default=-1) + 1:05d}-{name}"
        write_video(frames, path, request.fps)
    return path


def render_video(request: GanVideoRequest, generator, model_info, job: Job, outdir: Path | None) -> GanVideoResult:
    """Render and write the video of a validated request."""
    if request.format == "mp4" and not mp4_available():
        raise InvalidRequest("format", "MP4 needs the ffmpeg binary of the imageio-ffmpeg wheel, which is missing: "
                                       "use gif")
    frames = to_frames(frame_images(request, generator, job), request.size)
    path = save_video(frames, outdir, request)
    caps = gan.capabilities(generator)
    text = format_infotext("", "", {
        "Seeds": ",".join(map(str, request.seeds)), "Interpolation": "slerp z" if request.space == "z" else "lerp w",
        "Frames": len(frames), "FPS": request.fps, "Loop": "yes" if request.loop else "no",
        "Truncation psi": f"{request.truncation_psi:g}", "Truncation cutoff": request.truncation_cutoff,
        "Class": caps.class_names[gan.class_indices(request.class_name, caps)[0]] if caps.conditional else None,
        "Style mix seed": request.style_mix_seed,
        "Style mix from": request.style_mix_from if request.style_mix_seed is not None else None,
        "Style mix to": request.style_mix_to if request.style_mix_seed is not None else None,
        "Noise mode": request.noise_mode if caps.stylegan else None,
        "Translate": f"{request.translate[0]:g} {request.translate[1]:g}" if request.translate != (0.0, 0.0) else None,
        "Rotate": f"{request.rotate:g}" if request.rotate else None,
        "Model hash": model_info.shorthash, "Model": model_info.model_name}).lstrip("\n")
    return GanVideoResult(request, model_info.title, path, len(frames), text)
