"""Image -> latent (projection): the w whose picture is nearest an uploaded image, found by optimisation.

As NVIDIA's StyleGAN projector (Karras et al. 2020, projector.py): start from w_avg, Adam on w with a learning
rate that ramps up over the first 5% of the steps and down (cosine) over the last 25%, and Gaussian noise on w,
w's spread × `noise_factor`, fading out (quadratically) by 75% of the steps so the start does not stick in the
first valley. What differs, and why:

  - The loss is NVIDIA's VGG16 perceptual (LPIPS) distance only when the user put VGG16 weights in models/LPIPS
    (modules/models/vgg_features.py; never downloaded, never TorchScript); else the pixels' mean squared error.
    `loss`: auto (perceptual when the file is there), pixels, perceptual, perceptual+pixels (both summed).
  - The noise inputs stay fixed (noise mode const); NVIDIA's also optimises them with a regulariser. A projected
    w then renders the same picture in the GAN Sampler, whose noise is const by default.
  - w+ (one w per synthesis layer) is offered for per-layer models: closer to the image, less editable.

The result's `ws` [num_ws, w_dim] (or [1, w_dim] for a model without per-layer styles) is a latent the GAN
Sampler renders as is (GanRequest.latents with "w": no mapping, no truncation).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from modules.capabilities.gan.request import GanProjectRequest
from modules.capabilities.gan.run import (average_w, capabilities, class_indices, model_device, synthesis_options,
                                          to_pil)
from modules.errors import InvalidRequest
from modules.jobs import Interrupted, Job

W_SPREAD_SAMPLES = 1000   # z samples for w's spread (NVIDIA: 10000); seeds 0.. of a CPU generator: repeatable
LR_RAMP_UP, LR_RAMP_DOWN, NOISE_RAMP = 0.05, 0.25, 0.75  # NVIDIA projector's, as fractions of the steps


@dataclass
class GanProjectResult:
    request: GanProjectRequest
    model_title: str
    ws: torch.Tensor | None = None           # [num_ws or 1, w_dim], float32 CPU: the best latent found
    image: Image.Image | None = None         # its picture
    target: Image.Image | None = None        # the uploaded image at the model's size
    psnr: list[float] = field(default_factory=list)  # dB of each step's w (the first: w_avg plus noise)
    steps_done: int = 0
    interrupted: bool = False
    loss: str = ""                           # the loss used: pixels, perceptual or perceptual+pixels

    @property
    def latent(self) -> dict | None:
        """The found latent as GanRequest.latents takes it."""
        return None if self.ws is None else {"w": self.ws.tolist()}


def target_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """[1, 3, size, size] in [-1, 1]: the image centre-cropped to a square and resized to the model's side."""
    image = image.convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if image.size != (size, size):
        image = image.resize((size, size), Image.LANCZOS)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    return pixels / 127.5 - 1


def psnr(images: torch.Tensor, target: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [-1, 1] (peak-to-peak 2)."""
    mse = float(((images.clamp(-1, 1) - target) ** 2).mean())
    return 10 * math.log10(4 / max(mse, 1e-12))


def w_spread(generator, class_index: int, device) -> float:
    """NVIDIA's w_std: the root mean squared distance of sampled w from their mean."""
    z_dim = int(generator.z_dim)
    z = torch.randn(W_SPREAD_SAMPLES, z_dim, generator=torch.Generator("cpu").manual_seed(123))
    c = torch.full((W_SPREAD_SAMPLES,), class_index, dtype=torch.long)
    with torch.inference_mode():
        w = generator.mapping(z.to(device), c.to(device))
        w = (w[:, 0] if w.ndim == 3 else w).double()
    return float(((w - w.mean(0)) ** 2).sum() / W_SPREAD_SAMPLES) ** 0.5


def with_loss(request: GanProjectRequest, manager) -> GanProjectRequest:
    """The request with `loss` resolved (auto: perceptual when models/LPIPS holds weights) and, for a perceptual
    loss, the VGG16 network read into the manager's cache (a bad file is refused naming it, before any step runs);
    the job takes it from there (`with_perceptual`)."""
    present = manager is not None and manager.lpips_files.present()
    if request.loss == "auto":
        request.loss = "perceptual" if present else "pixels"
    if request.loss.startswith("perceptual"):
        if not present:
            raise InvalidRequest("loss", f"{request.loss} needs VGG16 weights in models/LPIPS (vgg16.safetensors, "
                                         "torchvision's features.N names; nothing is downloaded): use pixels")
        with manager.perceptual_model():  # read now, into the cache: a bad file is refused before the job waits
            pass
    return request


@contextmanager
def with_perceptual(request: GanProjectRequest, manager) -> Iterator[GanProjectRequest]:
    """The request with its VGG16 network, held in the manager's cache (never evicted) while the job runs."""
    if not request.loss.startswith("perceptual"):
        yield request
        return
    with manager.perceptual_model() as network:
        if network is None:  # the files went away after the job was accepted
            raise InvalidRequest("loss", f"{request.loss} needs VGG16 weights in models/LPIPS: they are gone")
        yield dataclasses.replace(request, perceptual=network)


def learning_rate(request: GanProjectRequest, step: int) -> float:
    t = step / request.steps
    ramp = min(1.0, (1 - t) / LR_RAMP_DOWN)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return request.learning_rate * ramp * min(1.0, t / LR_RAMP_UP)


def project(request: GanProjectRequest, generator, model_info, job: Job) -> GanProjectResult:
    caps = capabilities(generator)
    if not caps.image_size:
        raise InvalidRequest("model", "this GAN does not say its picture size")
    if request.w_plus and not caps.layer_styles:
        raise InvalidRequest("w_plus", "this model has no per-layer styles: project into w")
    (class_index,) = class_indices(request.class_name, caps)
    device = model_device(generator)
    target = target_tensor(request.image, caps.image_size).to(device)
    c = torch.tensor([class_index], dtype=torch.long, device=device)
    options = synthesis_options(caps)  # const noise; StyleGAN3's identity transform
    layers = caps.num_ws if caps.layer_styles else 0

    def render(w: torch.Tensor) -> torch.Tensor:
        if not layers:
            return generator.synthesis(w)
        ws = w.expand(-1, layers, -1) if w.shape[1] == 1 else w
        return generator.synthesis(ws, **options)

    result = GanProjectResult(request, model_info.title, target=to_pil(target.cpu(), caps.stylegan)[0],
                              loss=request.loss)
    vgg = None if request.perceptual is None else request.perceptual.to(device)
    if vgg is not None:
        with torch.inference_mode():
            target_taps = vgg.taps(target)
        target_taps = [t.clone() for t in target_taps]  # out of inference mode: used in the graph
    job.start(1, request.steps)
    with torch.inference_mode(False), torch.enable_grad():
        w_avg = average_w(generator, c).detach().float().clone()          # [1, w_dim]
        start = w_avg[:, None].repeat(1, layers if request.w_plus else 1, 1) if layers else w_avg
        w_opt = start.clone().requires_grad_(True)
        spread = w_spread(generator, class_index, device) if request.noise_factor else 0.0
        noise_rng = torch.Generator("cpu").manual_seed(request.seed)
        optimizer = torch.optim.Adam([w_opt], betas=(0.9, 0.999), lr=request.learning_rate)
        best, best_psnr = w_opt.detach().clone(), -math.inf
        for step in range(request.steps):
            t = step / request.steps
            scale = spread * request.noise_factor * max(0.0, 1 - t / NOISE_RAMP) ** 2
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(request, step)
            noise = torch.randn(w_opt.shape, generator=noise_rng).to(device) * scale
            w_step = w_opt + noise
            images = render(w_step)
            loss = ((images.float() - target) ** 2).mean() if request.loss != "perceptual" else 0
            if vgg is not None:
                loss = loss + vgg.distance(images.float(), target_taps).sum()
            score = psnr(images.detach().float(), target)  # of this step's w: one forward pass a step
            result.psnr.append(score)
            if score > best_psnr:
                best, best_psnr = w_step.detach().clone(), score
            (grad,) = torch.autograd.grad(loss, [w_opt])  # only w's gradient: the weights are shared, not trained
            w_opt.grad = grad
            optimizer.step()
            result.steps_done = step + 1
            if request.preview_every and (step + 1) % request.preview_every == 0:
                job.set_preview(to_pil(images.detach().float().cpu(), caps.stylegan)[0])
            try:
                job.report_step(step + 1)
            except Interrupted:  # keep the best latent so far: the user stopped it because it looked right
                result.interrupted = True
                break
    ws = best.expand(-1, layers, -1) if layers and best.shape[1] == 1 else best
    result.ws = ws[0].float().cpu().reshape(max(layers, 1), -1)
    with torch.inference_mode():
        result.image = to_pil(render(result.ws[None].to(device) if layers else result.ws.to(device)).clamp(-1, 1)
                              .float().cpu(), caps.stylegan)[0]
    return result
