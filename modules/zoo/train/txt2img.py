"""Train the built-in text-to-image model (a tiny Stable Diffusion) on Shapes, from scratch.

    python -m modules.zoo.train.txt2img                       # full run, exports the pipeline
    python -m modules.zoo.train.txt2img --ae-steps 20 --steps 20 --size tiny --out /tmp/t --export /tmp/t/pipe

Two stages, like real Stable Diffusion:
  1. the AutoencoderKL learns to squeeze 32x32 images into 8x8x4 latents (MSE + a small KL);
  2. the AutoencoderKL is frozen, the data set is encoded once, and the UNet and the
     CLIP text encoder learn to predict the noise added to latents (epsilon, SD's betas),
     with 10% of captions replaced by "" so classifier-free guidance works.
Opt-in terms that aim to keep CFG and negative prompts on the picture manifold (guidance.py; off
by default; the shipped weights' two fine-tunes use --guidance-smoothness, modules/zoo/train/all.py):
--extrapolation-weight (decode(z1 + k(z1 - z2)) = clip(x1 + k(x1 - x2))), --colour-latent-weight (colour stored linearly
in latent channels 0-2), --junk-only / --junk-mixed (words outside the caption grammar change
nothing), --guidance-smoothness (the guidance direction changes slowly with the noisy latent, so
multistep samplers stay stable under CFG). --init PATH fine-tunes a written pipeline, --freeze-encoder
keeps its latent space.
Writes samples.png and loss.png into --out as it goes, and checkpoint.pt (resumed
automatically). At the end the EMA weights are saved as a diffusers
StableDiffusionPipeline folder in --export.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from modules.paths import MODELS_DIR, OUTPUTS_DIR
from modules.zoo import shapes
from modules.zoo.train import guidance
from modules.zoo.train.common import EMA, load_checkpoint, save_checkpoint, save_loss_plot, setup_threads
from modules.zoo.train.clip_tokenizer import load_tokenizer, write_tokenizer_files
from modules.zoo.train.txt2img_model import build_components, make_pipeline

SAMPLE_PROMPTS = [
    "a red circle on a white background", "a blue square on a black background",
    "a large green triangle in the center on a gray background", "a small yellow star in the top left on a black background",
    "a purple cross on a white background", "a large orange circle in the bottom right",
    "a cyan star at the top and a magenta square at the bottom", "a large blue cross on the left on a white background",
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(OUTPUTS_DIR / "zoo-train" / "txt2img"), help="folder for checkpoint, samples, loss plot")
    p.add_argument("--export", default=str(MODELS_DIR / "Stable-diffusion" / "zoo-shapes"), help="pipeline folder written at the end")
    p.add_argument("--size", default="default", choices=["default", "tiny"])
    p.add_argument("--ae-steps", type=int, default=2000)
    p.add_argument("--steps", type=int, default=2000, help="UNet training steps")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--ae-batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--ae-lr", type=float, default=1e-3)
    p.add_argument("--init", default="", help="start from this pipeline folder's weights (a fine-tune) instead of random ones")
    p.add_argument("--freeze-encoder", action="store_true",
                   help="train only the autoencoder's decoder (the latent space, and so a --init UNet, stay valid)")
    p.add_argument("--images", type=int, default=20000, help="training images (generated, seed 0)")
    p.add_argument("--two-shape-probability", type=float, default=0.25)
    p.add_argument("--ema-decay", type=float, default=0.998)
    p.add_argument("--caption-dropout", type=float, default=0.1)
    p.add_argument("--junk-only", type=float, default=0.0, help="share of texts that are junk words only (no caption)")
    p.add_argument("--junk-mixed", type=float, default=0.0, help="share of captions with junk words mixed in")
    p.add_argument("--extrapolation-weight", type=float, default=0.0,
                   help="weight of the autoencoder's decode(z1 + k(z1 - z2)) = clip(x1 + k(x1 - x2)) term")
    p.add_argument("--colour-latent-weight", type=float, default=0.0,
                   help="weight of the term that makes latent channels 0-2 the 4x4-pooled RGB (colour stored linearly)")
    p.add_argument("--extrapolation-max", type=float, default=2.0, help="k is drawn uniformly from [0, this]")
    p.add_argument("--extrapolation-twins", type=float, default=0.5,
                   help="share of the extrapolation pairs that are a scene and its recolouring (the rest: random pictures)")
    p.add_argument("--snr-gamma", type=float, default=5.0,
                   help="min-SNR loss weighting's gamma (0: every timestep weighted alike, the plain epsilon loss)")
    p.add_argument("--guidance-smoothness", type=float, default=0.0,
                   help="weight of the term that makes the guidance direction (eps_cond - eps_negative) change slowly with"
                        " the noisy latent, for multistep samplers (PLMS, UniPC) at CFG 7 (the shipped fine-tunes: 1.5;"
                        " guidance.py)")
    p.add_argument("--smoothness-batch", type=int, default=16, help="pictures per step that the smoothness term looks at")
    p.add_argument("--smoothness-from", type=int, default=0,
                   help="the smoothness term looks at timesteps from this one up (the last few steps are too few to grow)")
    p.add_argument("--sample-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fp16", action="store_true", help="export weights as fp16")
    return p.parse_args(argv)


def guided_autoencoder_loss(vae, x, idx, images, twins, rng, args):
    """Reconstruction + KL, plus decode(z1 + k(z1 - z2)) = clip(x1 + k(x1 - x2)) (guidance.py) and, optionally,
    latent channels 0-2 = the 4x4-pooled RGB; and the rows for the sample grid (input, output, target, extrapolated)."""
    # Partners: the first ones the same scenes recoloured, the rest other random pictures (a decoder asked to be
    # linear between unrelated pictures blurs shapes; along a recolouring it only has to keep colour linear).
    half = round(args.ae_batch * args.extrapolation_twins)
    partner = torch.cat([twins[idx[:half]], images[torch.randint(len(images), (args.ae_batch - half,), generator=rng)]])
    k = torch.rand(args.ae_batch, 1, 1, 1, generator=rng) * args.extrapolation_max
    posterior = vae.encode(torch.cat([x, partner])).latent_dist
    z1, z2 = posterior.mean.chunk(2)
    decoded = vae.decode(torch.cat([posterior.sample()[:args.ae_batch], z1 + k * (z1 - z2)])).sample
    recon, extrapolated = decoded.chunk(2)
    kl = posterior.kl().mean() / posterior.mean[0].numel()
    target = (x + k * (x - partner)).clamp(-1, 1)
    loss = F.mse_loss(recon, x) + 1e-4 * kl + args.extrapolation_weight * F.mse_loss(extrapolated, target)
    if args.colour_latent_weight:
        # Colour kept linearly in the latent: a step away from green is a step towards saturated red, not magenta.
        pooled = F.avg_pool2d(torch.cat([x, partner]), 32 // posterior.mean.shape[-1])
        loss = loss + args.colour_latent_weight * F.mse_loss(posterior.mean[:, :3], pooled)
    return loss, [x[:8], recon[:8].detach(), target[:8], extrapolated[:8].detach()]


def train_autoencoder(vae, images: torch.Tensor, twins: torch.Tensor | None, args, out: Path, ckpt: dict | None) -> list[float]:
    trained = [p for name, p in vae.named_parameters()
               if not (args.freeze_encoder and name.startswith(("encoder.", "quant_conv.")))]
    opt = torch.optim.Adam(trained, lr=args.ae_lr)
    losses, start = [], 0
    if ckpt is not None:
        vae.load_state_dict(ckpt["vae"])
        if ckpt["stage"] == "autoencoder":
            opt.load_state_dict(ckpt["opt"])
        losses, start = ckpt["ae_losses"], ckpt.get("ae_step", args.ae_steps)
    rng = torch.Generator().manual_seed(start)
    vae.train()
    for step in tqdm(range(start, args.ae_steps), desc="autoencoder", initial=start, total=args.ae_steps):
        idx = torch.randint(len(images), (args.ae_batch,), generator=rng)
        x = images[idx]
        if twins is None:  # the plain recipe (the shipped weights'): reconstruction and a small KL
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample()).sample
            kl = posterior.kl().mean() / posterior.mean[0].numel()
            loss, shown = F.mse_loss(recon, x) + 1e-4 * kl, [x[:8], recon[:8].detach()]
        else:
            loss, shown = guided_autoencoder_loss(vae, x, idx, images, twins, rng, args)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if (step + 1) % args.sample_every == 0 or step + 1 == args.ae_steps:
            pair = torch.cat(shown).clamp(-1, 1)
            shapes.save_grid(((pair + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy(), out / "autoencoder.png")
            save_loss_plot({"autoencoder": losses}, out / "autoencoder_loss.png")
            save_checkpoint(out / "checkpoint.pt", stage="autoencoder", vae=vae.state_dict(), opt=opt.state_dict(),
                            ae_losses=losses, ae_step=step + 1)
    vae.eval().requires_grad_(False)
    return losses


@torch.no_grad()
def encode_dataset(vae, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    means, stds = [], []
    for chunk in tqdm(images.split(256), desc="encoding"):
        dist = vae.encode(chunk).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


ROUGHNESS_STEP = 0.05  # std of the random latent step: small enough to read the model's local slope


def guidance_roughness(unet, tokenizer, text_encoder, noisy, t, pred, prompts, negatives, gen, n: int,
                       t_from: int) -> torch.Tensor:
    """Mean squared change of the guidance direction eps(x, c) - eps(x, negative) along a small random step of x,
    per unit step: CFG multiplies it by (scale - 1), and a multistep sampler is unstable when that product times
    its step is large (guidance.py)."""
    n = min(n, len(prompts))
    step = ROUGHNESS_STEP * torch.randn(noisy[:n].shape, generator=gen)
    negative = encode_prompts(tokenizer, text_encoder, negatives[:n])
    cond = encode_prompts(tokenizer, text_encoder, prompts[:n])
    moved = unet(torch.cat([noisy[:n] + step, noisy[:n], noisy[:n] + step]), torch.cat([t[:n]] * 3),
                 torch.cat([cond, negative, negative])).sample
    cond_moved, away, away_moved = moved.chunk(3)
    change = (cond_moved - pred[:n]) - (away_moved - away)
    looked_at = (t[:n] >= t_from).float().view(-1, 1, 1, 1)
    return (looked_at * change.pow(2)).mean() / ROUGHNESS_STEP ** 2


def encode_prompts(tokenizer, text_encoder, prompts: list[str]) -> torch.Tensor:
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids)[0]


def save_samples(parts: dict, unet, text_encoder, path: Path) -> None:
    pipe = make_pipeline(parts["tokenizer"], text_encoder, parts["vae"], unet, parts["scheduler"])
    pipe.set_progress_bar_config(disable=True)
    images = pipe(SAMPLE_PROMPTS, num_inference_steps=20, guidance_scale=5.0, output_type="np",
                  generator=torch.Generator().manual_seed(0)).images
    shapes.save_grid((images * 255).round().astype(np.uint8), path, columns=4, scale=3)


def load_init(parts: dict, folder: Path) -> None:
    """The VAE, UNet and text encoder weights (and the latent scale) of a pipeline folder this script wrote."""
    from safetensors.torch import load_file
    for part, file in (("vae", "diffusion_pytorch_model"), ("unet", "diffusion_pytorch_model"), ("text_encoder", "model")):
        parts[part].load_state_dict(load_file(str(folder / part / f"{file}.safetensors")), strict=True)
    config = json.loads((folder / "vae" / "config.json").read_text())
    parts["vae"].register_to_config(scaling_factor=config["scaling_factor"])


def main(argv=None) -> None:
    args = parse_args(argv)
    setup_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    parts = build_components(args.size, out / "tokenizer")
    vae, unet, text_encoder, tokenizer = parts["vae"], parts["unet"], parts["text_encoder"], parts["tokenizer"]
    scheduler = parts["scheduler"]
    ckpt = load_checkpoint(out / "checkpoint.pt")
    if args.init:
        load_init(parts, Path(args.init))

    data = shapes.make_dataset(args.images, seed=0, two_shape_probability=args.two_shape_probability)
    images = data.tensors()
    t0 = time.time()
    twins = None
    if args.extrapolation_weight or args.colour_latent_weight:
        twins = torch.from_numpy(guidance.recoloured_images(data.scenes, seed=1)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    ae_losses = train_autoencoder(vae, images, twins, args, out, ckpt)
    print(f"autoencoder stage: {time.time() - t0:.0f}s")

    latent_mean, latent_std = encode_dataset(vae, images)
    if args.init and args.freeze_encoder:
        scaling = float(vae.config.scaling_factor)  # same encoder: the UNet's latent scale stays
    else:
        scaling = float(1.0 / (latent_mean + latent_std * torch.randn_like(latent_std)).std())
    vae.register_to_config(scaling_factor=scaling)

    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    ema_unet, ema_text = EMA(unet, args.ema_decay), EMA(text_encoder, args.ema_decay)
    losses, start = [], 0
    if ckpt is not None and ckpt["stage"] == "unet":
        unet.load_state_dict(ckpt["unet"])
        text_encoder.load_state_dict(ckpt["text_encoder"])
        ema_unet.model.load_state_dict(ckpt["ema_unet"])
        ema_text.model.load_state_dict(ckpt["ema_text"])
        opt.load_state_dict(ckpt["opt"])
        losses, start = ckpt["losses"], ckpt["step"]
    alphas_cumprod = scheduler.alphas_cumprod
    snr = alphas_cumprod / (1 - alphas_cumprod)
    caption_rng = np.random.default_rng(start)
    gen = torch.Generator().manual_seed(start)
    unet.train()
    text_encoder.train()
    t0 = time.time()
    for step in tqdm(range(start, args.steps), desc="unet", initial=start, total=args.steps):
        lr = float(args.lr * min(1.0, (step + 1) / 200) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / args.steps))))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(len(images), (args.batch,), generator=gen)
        latents = (latent_mean[idx] + latent_std[idx] * torch.randn(latent_mean[idx].shape, generator=gen)) * scaling
        prompts = [guidance.training_text(data.scenes[i], caption_rng, args.caption_dropout, args.junk_only, args.junk_mixed)
                   for i in idx.tolist()]
        noise = torch.randn(latents.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (args.batch,), generator=gen)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
        pred = unet(noisy, t, encode_prompts(tokenizer, text_encoder, prompts)).sample
        # Min-SNR-gamma weighting: less effort on nearly clean timesteps, faster convergence. But CFG multiplies
        # the errors left there, and multistep samplers (PLMS, UniPC) feed them forward: --snr-gamma 0 evens it.
        weight = torch.clamp(snr[t], max=args.snr_gamma) / snr[t] if args.snr_gamma else torch.ones_like(snr[t])
        loss = (weight * F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))).mean()
        if args.guidance_smoothness:
            negatives = [guidance.negative_text(caption_rng) for _ in range(args.smoothness_batch)]
            loss = loss + args.guidance_smoothness * guidance_roughness(unet, tokenizer, text_encoder, noisy, t, pred,
                                                                        prompts, negatives, gen, args.smoothness_batch,
                                                                        args.smoothness_from)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema_unet.update(unet, step)
        ema_text.update(text_encoder, step)
        losses.append(loss.item())
        if (step + 1) % args.sample_every == 0 or step + 1 == args.steps:
            save_samples(parts, ema_unet.model, ema_text.model, out / "samples.png")
            save_loss_plot({"unet (min-SNR weighted)": losses, "autoencoder": ae_losses}, out / "loss.png")
            save_checkpoint(out / "checkpoint.pt", stage="unet", vae=vae.state_dict(), ae_losses=ae_losses,
                            unet=unet.state_dict(), text_encoder=text_encoder.state_dict(),
                            ema_unet=ema_unet.model.state_dict(), ema_text=ema_text.model.state_dict(),
                            opt=opt.state_dict(), losses=losses, step=step + 1)
    print(f"unet stage: {time.time() - t0:.0f}s")

    # A fresh tokenizer: the one used for training keeps its padding and truncation settings, and
    # transformers would save them into tokenizer.json, where they would apply to every later call.
    pipe = make_pipeline(load_tokenizer(out / "tokenizer"), ema_text.model, vae, ema_unet.model, scheduler)
    if args.fp16:
        pipe.to(torch.float16)
    pipe.save_pretrained(args.export, safe_serialization=True)
    # transformers 5 saves only tokenizer.json; keep CLIP's classic vocab.json + merges.txt too.
    write_tokenizer_files(Path(args.export) / "tokenizer")
    print(f"exported pipeline to {args.export}")


if __name__ == "__main__":
    main()
