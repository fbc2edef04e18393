"""Evaluate the built-in model zoo on Shapes; prints one JSON object.

    HF_HUB_OFFLINE=1 python bench/zoo_eval.py [--write-factors]

1. A factor classifier (small CNN, heads for kind, colour, size, position, background)
   is trained on real single-shape Shapes images; its accuracy on held-out real images
   is reported, and its 128-d penultimate layer is the feature space for Fréchet distances.
2. Fréchet distance (FD) to real images, N images each: real vs real (another seed: the
   floor), β-VAE prior samples, GAN samples (ψ = 1, uniform classes), txt2img samples
   (prompts: the real images' full captions).
3. txt2img attribute accuracy on prompts never seen in training: every held-out
   (kind, colour, position) triple of shapes.HELDOUT_COMBOS, with random size and
   background, several seeds each; the classifier's prediction must match the prompt.
4. β-VAE reconstruction MSE (images in [-1, 1]) on held-out images, and per factor the
   latent dimension with the highest normalised mutual information with it (plus the
   MIG-style gap to the second best). ``--write-factors`` stores the per-dim factor
   names in the VAE file's metadata for the app.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modules.paths import MODELS_DIR  # noqa: E402
from modules.zoo import shapes  # noqa: E402

HEADS = ("kind", "colour", "size", "position", "background")


class FactorClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(),
        )
        self.heads = nn.ModuleDict({h: nn.Linear(128, len(shapes.factor_names(h))) for h in HEADS})

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.body(images)
        return {name: head(h) for name, head in self.heads.items()}


def labels_of(data: shapes.ShapesData) -> dict[str, torch.Tensor]:
    return {h: torch.from_numpy(data.labels(h)) for h in HEADS}


def train_classifier(steps: int, log) -> tuple[FactorClassifier, dict[str, float]]:
    torch.manual_seed(0)
    train = shapes.make_dataset(30000, seed=10, exclude_heldout=False)
    test = shapes.make_dataset(2000, seed=11, exclude_heldout=False)
    x, y = train.tensors(), labels_of(train)
    model = FactorClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    for step in range(steps):
        idx = torch.randint(len(x), (128,), generator=gen)
        out = model(x[idx])
        loss = sum(F.cross_entropy(out[h], y[h][idx]) for h in HEADS)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            log(f"classifier step {step} loss {loss.item():.3f}")
    model.eval()
    predictions = predict(model, test.tensors())
    accuracy = {h: float((predictions[h] == labels_of(test)[h]).float().mean()) for h in HEADS}
    return model, accuracy


@torch.no_grad()
def predict(model: FactorClassifier, images: torch.Tensor) -> dict[str, torch.Tensor]:
    outs = [model(chunk) for chunk in images.split(500)]
    return {h: torch.cat([o[h] for o in outs]).argmax(1) for h in HEADS}


@torch.no_grad()
def features(model: FactorClassifier, images: torch.Tensor) -> np.ndarray:
    return torch.cat([model.features(chunk) for chunk in images.split(500)]).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def load_pipeline(folder: Path, precision: str = "fp32"):
    """The txt2img pipeline in fp32, or as the app's --precision auto places it on this CPU (bf16 weights where
    measured faster, the VAE fp32, channels_last where chosen: modules/devices.py)."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    from modules.devices import device_config
    from modules.paths import APP_ROOT
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    devices = device_config("cpu", precision=precision, cache_dir=APP_ROOT / "cache")
    pipe.unet.to(dtype=devices.dtype)
    pipe.text_encoder.to(dtype=devices.dtype)
    pipe.vae.to(dtype=devices.vae_dtype)
    if devices.channels_last:
        for module in (pipe.unet, pipe.vae):
            module.to(memory_format=torch.channels_last)
    pipe.precision_described = devices.describe()
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def txt2img(pipe, prompts: list[str], seed: int, steps: int, cfg: float, batch: int = 50) -> torch.Tensor:
    """Images in [-1, 1]. The noise is drawn in fp32 whatever the UNet's dtype (the same noise as the fp32
    run), and the latents are decoded by the VAE in its own dtype (fp32 under --precision auto)."""
    out = []
    vae = pipe.vae
    for i in range(0, len(prompts), batch):
        chunk = prompts[i:i + batch]
        generator = torch.Generator().manual_seed(seed + i)
        size = pipe.unet.config.sample_size
        noise = torch.randn((len(chunk), pipe.unet.config.in_channels, size, size), generator=generator)
        latents = pipe(chunk, num_inference_steps=steps, guidance_scale=cfg, output_type="latent",
                       latents=noise.to(pipe.unet.dtype), generator=generator).images
        images = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample.float()
        out.append(((images / 2 + 0.5).clamp(0, 1) * 2 - 1))
    return torch.cat(out).float()


def mutual_information(codes: np.ndarray, labels: np.ndarray, bins: int = 20) -> float:
    edges = np.quantile(codes, np.linspace(0, 1, bins + 1)[1:-1])
    digit = np.digitize(codes, edges)
    joint = np.zeros((bins, labels.max() + 1))
    np.add.at(joint, (digit, labels), 1)
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def entropy(labels: np.ndarray) -> float:
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def vae_factor_report(mu: np.ndarray, data: shapes.ShapesData) -> dict:
    position = data.labels("position")
    factors = {"kind": data.labels("kind"), "colour": data.labels("colour"), "size": data.labels("size"),
               "position_x": position % 3, "position_y": position // 3, "background": data.labels("background")}
    report = {}
    for name, labels in factors.items():
        nmi = np.array([mutual_information(mu[:, d], labels) for d in range(mu.shape[1])]) / entropy(labels)
        order = np.argsort(-nmi)
        report[name] = {"best_dim": int(order[0]), "nmi": round(float(nmi[order[0]]), 3),
                        "gap_to_second": round(float(nmi[order[0]] - nmi[order[1]]), 3), "all_nmi": nmi.round(3).tolist()}
    return report


def factor_names_per_dim(report: dict, latent_dim: int, threshold: float = 0.1) -> list[str]:
    names = []
    for d in range(latent_dim):
        scores = {name: r["all_nmi"][d] for name, r in report.items()}
        best = max(scores, key=scores.get)
        names.append(best if scores[best] >= threshold else "")
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="images per Fréchet distance set")
    p.add_argument("--classifier-steps", type=int, default=2000)
    p.add_argument("--seeds-per-prompt", type=int, default=4)
    p.add_argument("--steps", type=int, default=20, help="txt2img sampling steps (DPM++ 2M)")
    p.add_argument("--cfg", type=float, default=5.0)
    p.add_argument("--txt2img", default=str(MODELS_DIR / "Stable-diffusion" / "zoo-shapes"))
    p.add_argument("--vae", default=str(MODELS_DIR / "Latent" / "shapes-beta-vae.safetensors"))
    p.add_argument("--gan", default=str(MODELS_DIR / "GAN" / "shapes-gan.safetensors"))
    p.add_argument("--write-factors", action="store_true", help="store per-dim factor names in the VAE file")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--classifier-cache", default="", help="reuse/save the trained classifier here (a .pt file)")
    p.add_argument("--precision", choices=("fp32", "auto"), default="fp32",
                   help="txt2img as the app's --precision places it (auto: bf16 weights where this CPU is faster)")
    p.add_argument("--accuracy-only", action="store_true",
                   help="only txt2img's attribute accuracy on unseen prompts (no VAE, GAN or Fréchet distances)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.time()
    result: dict = {}

    cache = Path(args.classifier_cache) if args.classifier_cache else None
    if cache and cache.exists():
        saved = torch.load(cache, weights_only=True)
        classifier = FactorClassifier()
        classifier.load_state_dict(saved["state"])
        classifier.eval()
        accuracy = saved["accuracy"]
    else:
        classifier, accuracy = train_classifier(args.classifier_steps, log)
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"state": classifier.state_dict(), "accuracy": accuracy}, cache)
    log(f"classifier ready {time.time() - t0:.0f}s")
    result["classifier_heldout_accuracy"] = {k: round(v, 4) for k, v in accuracy.items()}
    real_a = shapes.make_dataset(args.n, seed=12, exclude_heldout=False)
    real_b = shapes.make_dataset(args.n, seed=13, exclude_heldout=False)
    feats_real = features(classifier, real_a.tensors())
    fd = {"real_vs_real_floor": frechet_distance(feats_real, features(classifier, real_b.tensors()))}

    if args.accuracy_only:
        args.vae = args.gan = ""
    if args.vae and Path(args.vae).exists():
        from modules.models.zoo_loader import load_latent_model
        from modules.zoo.train.model_info import update_info
        vae = load_latent_model(args.vae)
        with torch.no_grad():
            heldout = shapes.make_dataset(2000, seed=14, exclude_heldout=False)
            x = heldout.tensors()
            mu, _ = vae.encode(x)
            recon = vae.decode(mu)
            samples = vae.decode(torch.randn(args.n, vae.latent_dim, generator=torch.Generator().manual_seed(0)))
        report = vae_factor_report(mu.numpy(), heldout)
        names = factor_names_per_dim(report, vae.latent_dim)
        result["vae"] = {"reconstruction_mse": round(float(F.mse_loss(recon, x)), 5), "latent_dim": vae.latent_dim,
                         "factors": {k: {kk: vv for kk, vv in v.items() if kk != "all_nmi"} for k, v in report.items()},
                         "latent_factors": names}
        fd["vae_samples"] = frechet_distance(feats_real, features(classifier, samples))
        if args.write_factors:
            update_info(args.vae, {"latent_factors": names, "factor_nmi": {k: v["all_nmi"] for k, v in report.items()}})
        log(f"vae done {time.time() - t0:.0f}s")

    if args.gan and Path(args.gan).exists():
        from modules.models.zoo_loader import load_gan
        from modules.zoo.gan import class_factors
        gan = load_gan(args.gan)
        gen = torch.Generator().manual_seed(0)
        classes = torch.arange(args.n) % gan.num_classes
        with torch.no_grad():
            samples = gan.sample(torch.randn(args.n, gan.z_dim, generator=gen), classes, 1.0)
            samples_07 = gan.sample(torch.randn(args.n, gan.z_dim, generator=gen), classes, 0.7)
        fd["gan_samples"] = frechet_distance(feats_real, features(classifier, samples))
        fd["gan_samples_psi_0.7"] = frechet_distance(feats_real, features(classifier, samples_07))
        result["gan"] = {"classes": len(gan.class_names)}
        # Each factor the class names (the kind, and the colour for "red circle" classes) must show.
        wanted = [class_factors(gan.class_names[i]) for i in classes.tolist()]
        for suffix, images in (("", samples), ("_psi_0.7", samples_07)):
            predicted = predict(classifier, images)
            for factor in wanted[0]:
                truth = torch.tensor([shapes.factor_names(factor).index(w[factor]) for w in wanted])
                result["gan"][f"{factor}_accuracy{suffix}"] = round(float((predicted[factor] == truth).float().mean()), 4)
        log(f"gan done {time.time() - t0:.0f}s")

    if Path(args.txt2img).exists():
        pipe = load_pipeline(Path(args.txt2img), args.precision)
        result["txt2img_precision"] = pipe.precision_described
        if not args.accuracy_only:
            prompts = [shapes.caption(scene) for scene in real_a.scenes]
            samples = txt2img(pipe, prompts, seed=1000, steps=args.steps, cfg=args.cfg)
            fd["txt2img_samples"] = frechet_distance(feats_real, features(classifier, samples))
            log(f"txt2img FD done {time.time() - t0:.0f}s")
        rng = np.random.default_rng(0)
        scenes = []
        for kind, colour, position in sorted(shapes.HELDOUT_COMBOS):
            for _ in range(args.seeds_per_prompt):
                size = shapes.SIZE_NAMES[rng.integers(2)]
                background = shapes.BACKGROUND_NAMES[rng.integers(3)]
                scenes.append(shapes.Scene((shapes.ShapeSpec(kind, colour, size, position),), background))
        data = shapes.ShapesData(np.zeros((len(scenes), 32, 32, 3), np.uint8), scenes)
        images = txt2img(pipe, [shapes.caption(s) for s in scenes], seed=2000, steps=args.steps, cfg=args.cfg)
        predicted = predict(classifier, images)
        truth = labels_of(data)
        result["txt2img_unseen_prompts"] = {
            "prompts": len(shapes.HELDOUT_COMBOS), "images": len(scenes), "sampler": "DPM++ 2M", "steps": args.steps,
            "cfg": args.cfg,
            "accuracy": {h: round(float((predicted[h] == truth[h]).float().mean()), 4) for h in HEADS},
        }
        log(f"txt2img done {time.time() - t0:.0f}s")

    result["frechet_distance"] = {k: round(v, 3) for k, v in fd.items()}
    floor = fd["real_vs_real_floor"]
    result["frechet_ratio_to_floor"] = {k: round(v / floor, 2) for k, v in fd.items() if k != "real_vs_real_floor"}
    result["n_per_set"] = args.n
    result["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
