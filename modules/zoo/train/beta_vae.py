"""Train the built-in β-VAE on single-shape Shapes images, from scratch.

    python -m modules.zoo.train.beta_vae                      # full run -> models/Latent/shapes-beta-vae.safetensors
    python -m modules.zoo.train.beta_vae --steps 20 --latent-dim 8 --channels 8,16 --out /tmp/v --export /tmp/v/vae.safetensors

Loss: per-image sum of squared errors + β·KL, with β warmed up from 0 over the
first 10% of steps (so the decoder learns something before the KL squeezes the
latent). Writes samples.png (top: data, middle: reconstructions, bottom: prior
samples), traversal.png (each row sweeps one latent dim from -2.5 to 2.5) and
loss.png into --out, and checkpoint.pt (resumed automatically).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from tqdm import tqdm

from modules.paths import MODELS_DIR, OUTPUTS_DIR
from modules.zoo import shapes
from modules.zoo.beta_vae import BetaVAE, BetaVAEConfig, loss_terms, save_latent_model
from modules.zoo.train.common import EMA, load_checkpoint, save_checkpoint, save_loss_plot, setup_threads


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(OUTPUTS_DIR / "zoo-train" / "beta-vae"))
    p.add_argument("--export", default=str(MODELS_DIR / "Latent" / "shapes-beta-vae.safetensors"))
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--latent-dim", type=int, default=10)
    p.add_argument("--channels", default="32,64,128")
    p.add_argument("--beta", type=float, default=4.0)
    p.add_argument("--images", type=int, default=40000)
    p.add_argument("--sample-every", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def to_uint8(images: torch.Tensor):
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def save_pictures(model: BetaVAE, batch: torch.Tensor, out: Path) -> None:
    mu, _ = model.encode(batch[:8])
    prior = model.decode(torch.randn(8, model.latent_dim, generator=torch.Generator().manual_seed(0)))
    shapes.save_grid(to_uint8(torch.cat([batch[:8], model.decode(mu), prior])), out / "samples.png")
    steps = torch.linspace(-2.5, 2.5, 9)
    rows = []
    for d in range(model.latent_dim):
        z = mu[:1].repeat(9, 1)
        z[:, d] = steps
        rows.append(model.decode(z))
    shapes.save_grid(to_uint8(torch.cat(rows)), out / "traversal.png", columns=9)


def main(argv=None) -> None:
    args = parse_args(argv)
    setup_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = BetaVAEConfig(latent_dim=args.latent_dim, channels=tuple(int(c) for c in args.channels.split(",")),
                           beta=args.beta)
    model = BetaVAE(config)
    ema = EMA(model, decay=0.998)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    curves, start = {"reconstruction": [], "kl": []}, 0
    ckpt = load_checkpoint(out / "checkpoint.pt")
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        ema.model.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        curves, start = ckpt["curves"], ckpt["step"]
    images = shapes.make_dataset(args.images, seed=1, two_shape_probability=0.0).tensors()
    gen = torch.Generator().manual_seed(start)
    t0 = time.time()
    for step in tqdm(range(start, args.steps), desc="beta-vae", initial=start, total=args.steps):
        for group in opt.param_groups:
            group["lr"] = args.lr * (1.0 if step < 0.7 * args.steps else 0.3)
        batch = images[torch.randint(len(images), (args.batch,), generator=gen)]
        reconstruction, kl = loss_terms(model, batch)
        beta = config.beta * min(1.0, step / (0.1 * args.steps + 1))
        loss = reconstruction + beta * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model, step)
        curves["reconstruction"].append(reconstruction.item())
        curves["kl"].append(kl.item())
        if (step + 1) % args.sample_every == 0 or step + 1 == args.steps:
            save_pictures(ema.model, batch, out)
            save_loss_plot(curves, out / "loss.png")
            save_checkpoint(out / "checkpoint.pt", model=model.state_dict(), ema=ema.model.state_dict(),
                            opt=opt.state_dict(), curves=curves, step=step + 1)
    print(f"training: {time.time() - t0:.0f}s")
    save_latent_model(args.export, ema.model)
    print(f"exported {args.export}")


if __name__ == "__main__":
    main()
