"""Fixtures for the Latent Explorer tests: a models folder with tiny β-VAEs and a tiny SD VAE file.

``trained_x_vae`` trains a 2-dim β-VAE for a few seconds on red circles that differ only in their
x position, then records which dimension follows x (``latent_factors`` = ["position_x", ""] or
the other way round) the way bench/zoo_eval.py does for the built-in model. No test here needs
the shipped weights in models/Latent."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from modules.paths import MODELS_DIR

X_JITTER = 7.0  # pixels either side of the centre


def x_position_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, 32, 32, 3] red circles on white at x offsets drawn from [-7, 7] px, and the offsets."""
    from modules.zoo import shapes

    xs = np.random.default_rng(seed).uniform(-X_JITTER, X_JITTER, n)
    images = np.stack([shapes.render(shapes.Scene((shapes.ShapeSpec("circle", "red", "large", "center",
                                                                    (float(x), 0.0)),), "white")) for x in xs])
    return images, xs


def shape_centre_x(images: np.ndarray, background=(255, 255, 255)) -> np.ndarray:
    """Centroid column of what differs from the background, per image."""
    weight = np.abs(images.astype(np.float32) - np.array(background, np.float32)).sum(-1)
    columns = np.arange(images.shape[2], dtype=np.float32)
    return (weight * columns[None, None, :]).sum((1, 2)) / weight.sum((1, 2))


def train_x_vae(path: Path, steps: int = 400, seed: int = 0) -> Path:
    from modules.zoo.beta_vae import BetaVAE, BetaVAEConfig, loss_terms, save_latent_model

    images, xs = x_position_images(512, seed)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.manual_seed(seed)
    model = BetaVAE(BetaVAEConfig(latent_dim=2, channels=(8, 16), beta=2.0))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        batch = data[torch.randint(len(data), (32,), generator=generator)]
        reconstruction, kl = loss_terms(model, batch)
        loss = reconstruction + model.config.beta * min(1.0, step / 100) * kl
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        mu, _ = model.encode(data)
    correlation = [abs(np.corrcoef(mu[:, d].numpy(), xs)[0, 1]) for d in range(model.latent_dim)]
    factors = ["position_x" if d == int(np.argmax(correlation)) else "" for d in range(model.latent_dim)]
    save_latent_model(path, model, {"latent_factors": factors})
    return path


def tiny_sd_vae_file(path: Path) -> Path:
    """The tiny test SD VAE, saved as a stand-alone file in the original (LDM) key layout."""
    from safetensors.torch import save_file

    from tests.convert_to_single_file import vae_to_original
    from tests.tiny_models import _tiny_vae

    torch.manual_seed(3)
    vae = _tiny_vae(scaling_factor=0.18215)
    save_file({k: v.contiguous() for k, v in vae_to_original(vae.state_dict()).items()}, str(path))
    return path


@pytest.fixture(scope="session")
def latent_models_dir(tmp_path_factory) -> Path:
    from tests.zoo_fixtures import make_tiny_beta_vae

    root = tmp_path_factory.mktemp("latent-models")
    for sub in ("Stable-diffusion", "VAE", "Latent", "GAN"):
        (root / sub).mkdir()
    train_x_vae(root / "Latent" / "x-vae.safetensors")
    built_in = MODELS_DIR / "Latent" / "shapes-beta-vae.safetensors"
    if built_in.exists():  # the shipped one, as a fresh clone has it (the explorer's default)
        shutil.copyfile(built_in, root / "Latent" / built_in.name)
    make_tiny_beta_vae(root / "Latent" / "random-6d.safetensors", latent_dim=6)
    tiny_sd_vae_file(root / "VAE" / "tiny-sd-vae.safetensors")
    return root


@pytest.fixture(scope="session")
def latent_backend(latent_models_dir, models_dir, tmp_path_factory):
    """A backend over latent_models_dir, with the session's tiny SD 1.x checkpoint added as by --ckpt."""
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    work = tmp_path_factory.mktemp("latent-backend")
    backend = Backend(BackendConfig(models_dir=latent_models_dir, outdir=work / "outputs", cache_dir=work / "cache",
                                    devices=device_config("cpu"), offline=True))
    backend.use_ckpt_flag(str(models_dir / "Stable-diffusion" / "tiny-sd15"))
    return backend


def beta_vae(backend, name: str):
    """A β-VAE of the backend's models/Latent as the explorer's jobs get it from the manager."""
    from modules.capabilities.latent.models import using_beta_vae

    with using_beta_vae(backend.manager, name) as model:
        return model


@pytest.fixture(scope="session")
def latent_app(latent_backend):
    """The whole UI over latent_backend, served in this process (starting webui.py again would cost
    the imports twice on a small machine); yields its URL."""
    from modules.ui.app import build_ui
    from modules.ui.common import CSS
    from tests.app_process import free_port

    demo = build_ui(latent_backend)
    demo.queue(default_concurrency_limit=4)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=CSS,
                allowed_paths=[str(latent_backend.config.outdir)])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()
