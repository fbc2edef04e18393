"""Train the built-in class-conditional GAN (condition: shape kind) on single-shape Shapes images.

    python -m modules.zoo.train.gan                           # full run -> models/GAN/shapes-gan.safetensors
    python -m modules.zoo.train.gan --steps 10 --channels 8,8,8 --d-channels 8,8,8 --out /tmp/g --export /tmp/g/gan.safetensors

Non-saturating logistic loss and Adam with β1 = 0.5 (the DCGAN recipe), and an EMA
copy of the generator that is what gets exported. The generator also tracks w_avg per class for truncation.
A class is a colour and a kind ("red circle", 40 classes). Two terms keep the generator honest:
the discriminator also names each real image's class and the generator is rewarded when its fakes
are named as asked (AC-GAN, Odena et al. 2017); and fakes come in pairs of one class whose images
must differ as their z do (mode seeking, Mao et al. 2019): with 40 classes a batch of 32 rarely holds
one class twice, so without it the discriminator cannot see a class collapse to a single image.
Writes samples.png (one row per class, ψ = 1 then ψ = 0.7 then ψ = 0 at the end
of each row), loss.png and checkpoint.pt (resumed automatically) into --out.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from modules.paths import MODELS_DIR, OUTPUTS_DIR
from modules.zoo import shapes
from modules.zoo.gan import CONDITIONS, Discriminator, Generator, GANConfig, class_labels, save_gan
from modules.zoo.train.common import EMA, load_checkpoint, save_checkpoint, save_loss_plot, setup_threads

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(OUTPUTS_DIR / "zoo-train" / "gan"))
    p.add_argument("--export", default=str(MODELS_DIR / "GAN" / "shapes-gan.safetensors"))
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--channels", default="128,64,32", help="generator channels at 8,16,32 px")
    p.add_argument("--d-channels", default="32,64,128", help="discriminator channels at 16,8,4 px")
    p.add_argument("--images", type=int, default=40000)
    p.add_argument("--sample-every", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--condition", choices=sorted(CONDITIONS), default="colour-kind",
                   help="what the class names: the shape kind, or colour and kind ('red circle')")
    p.add_argument("--aux-weight", type=float, default=1.0,
                   help="AC-GAN: weight of the discriminator's class-prediction loss (0 = projection only)")
    p.add_argument("--mode-seeking", type=float, default=1.0,
                   help="MSGAN: weight of the term that pushes two z of one class apart in the image")
    p.add_argument("--mapping-lr-scale", type=float, default=1.0,
                   help="mapping network's learning rate, times --lr (StyleGAN uses 0.01)")
    return p.parse_args(argv)


@torch.no_grad()
def save_samples(generator: Generator, path: Path) -> None:
    z = torch.randn(6, generator.z_dim, generator=torch.Generator().manual_seed(0))
    rows = []
    for c in range(generator.num_classes):
        rows += [generator.sample(z, c, 1.0), generator.sample(z[:1], c, 0.7), generator.sample(z[:1], c, 0.0)]
    images = torch.cat(rows)
    shapes.save_grid(((images + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy(), path, columns=8, scale=3)


def main(argv=None) -> None:
    args = parse_args(argv)
    setup_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = GANConfig(channels=tuple(int(c) for c in args.channels.split(",")), class_names=CONDITIONS[args.condition])
    G, D = Generator(config), Discriminator(config, tuple(int(c) for c in args.d_channels.split(",")))
    G_ema = EMA(G, decay=0.995)
    # StyleGAN trains its mapping network 100x slower; here, with the mode-seeking term guarding against
    # collapse, the full rate scored better (FD 3.3x vs 5.0x the floor after 4000 steps).
    mapping_params = list(G.mapping_net.parameters())
    synthesis_params = [p for p in G.parameters() if all(p is not q for q in mapping_params)]
    opt_g = torch.optim.Adam([{"params": synthesis_params}, {"params": mapping_params, "lr": args.lr * args.mapping_lr_scale}],
                             lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=args.lr, betas=(0.5, 0.999))
    curves, start = {"generator": [], "discriminator": []}, 0
    ckpt = load_checkpoint(out / "checkpoint.pt")
    if ckpt is not None:
        G.load_state_dict(ckpt["G"])
        D.load_state_dict(ckpt["D"])
        G_ema.model.load_state_dict(ckpt["G_ema"])
        try:
            opt_g.load_state_dict(ckpt["opt_g"])
        except ValueError:  # parameter groups changed since that checkpoint: restart Adam's moments
            print("generator optimizer state does not match; starting it afresh")
        opt_d.load_state_dict(ckpt["opt_d"])
        curves, start = ckpt["curves"], ckpt["step"]
    data = shapes.make_dataset(args.images, seed=2, two_shape_probability=0.0)
    images, labels = data.tensors(), torch.from_numpy(class_labels(data, config.class_names))
    gen = torch.Generator().manual_seed(start)
    t0 = time.time()
    for step in tqdm(range(start, args.steps), desc="gan", initial=start, total=args.steps):
        idx = torch.randint(len(images), (args.batch,), generator=gen)
        real, c_real = images[idx], labels[idx]
        # With mode seeking the fakes come in pairs of one class: halves 0 and 1 share classes, not z.
        c = c_real[:args.batch // 2].repeat(2) if args.mode_seeking else c_real
        z = torch.randn(len(c), config.z_dim, generator=gen)

        # Discriminator: real up, fake down.
        w = G.mapping(z, c)
        fake = G.synthesis(w)
        d_fake, d_real = D(fake.detach(), c), D(real, c_real)
        d_loss = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
        if args.aux_weight:  # AC-GAN: D learns to name the class of real images...
            d_loss = d_loss + args.aux_weight * F.cross_entropy(D.last_class_logits, c_real)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        # Generator: make D call the fakes real.
        g_loss = F.softplus(-D(fake, c)).mean()
        if args.aux_weight:  # ...and G is rewarded when its fakes get named as the class asked for.
            g_loss = g_loss + args.aux_weight * F.cross_entropy(D.last_class_logits, c)
        if args.mode_seeking:  # with many classes a batch rarely holds one class twice, so D cannot see
            half = len(c) // 2  # a class collapse to one image; this term (Mao et al. 2019) forbids it
            ratio = (fake[:half] - fake[half:2 * half]).abs().mean((1, 2, 3)) / (z[:half] - z[half:2 * half]).abs().mean(1)
            g_loss = g_loss + args.mode_seeking / (ratio.mean() + 1e-5)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        G.track_w_avg(w.detach(), c)
        G_ema.update(G, step)

        curves["generator"].append(g_loss.item())
        curves["discriminator"].append(d_loss.item())
        if (step + 1) % args.sample_every == 0 or step + 1 == args.steps:
            save_samples(G_ema.model, out / "samples.png")
            save_loss_plot(curves, out / "loss.png")
            save_checkpoint(out / "checkpoint.pt", G=G.state_dict(), D=D.state_dict(), G_ema=G_ema.model.state_dict(),
                            opt_g=opt_g.state_dict(), opt_d=opt_d.state_dict(), curves=curves, step=step + 1)
    print(f"training: {time.time() - t0:.0f}s")
    save_gan(args.export, G_ema.model)
    print(f"exported {args.export}")


if __name__ == "__main__":
    main()
