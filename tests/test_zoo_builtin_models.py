"""The shipped β-VAE and GAN load through their validating loaders and do their job."""
import pytest
import torch

from modules.paths import MODELS_DIR
from modules.zoo import shapes

VAE_FILE = MODELS_DIR / "Latent" / "shapes-beta-vae.safetensors"
GAN_FILE = MODELS_DIR / "GAN" / "shapes-gan.safetensors"


def test_builtin_beta_vae_reconstructs_shapes():
    if not VAE_FILE.exists():
        pytest.skip(f"built-in β-VAE is not shipped yet ({VAE_FILE} missing)")
    from modules.zoo import load_latent_model
    vae = load_latent_model(VAE_FILE)
    assert 8 <= vae.latent_dim <= 16
    x = shapes.make_dataset(64, seed=99).tensors()
    with torch.no_grad():
        mu, logvar = vae.encode(x)
        recon = vae.decode(mu)
    assert mu.shape == (64, vae.latent_dim) and logvar.shape == mu.shape
    # A blank background-only guess scores about 0.1; the model must do far better.
    assert torch.nn.functional.mse_loss(recon, x) < 0.05
    assert len(vae.latent_factors) == vae.latent_dim


def test_builtin_gan_samples_and_truncates():
    if not GAN_FILE.exists():
        pytest.skip(f"built-in GAN is not shipped yet ({GAN_FILE} missing)")
    from modules.zoo import load_gan
    gan = load_gan(GAN_FILE)
    assert gan.class_names == list(shapes.SHAPES) and gan.num_classes == 5
    z = torch.randn(4, gan.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = gan.sample(z, 0, truncation_psi=1.0)
        average = gan.sample(z, 0, truncation_psi=0.0)
        again = gan.sample(z, 0, truncation_psi=1.0)
    assert images.shape == (4, 3, 32, 32) and images.abs().max() <= 1
    assert torch.equal(images, again)  # same z, same image
    assert (images[0] - images[1]).abs().mean() > 0.01  # different z, different image
    assert torch.allclose(average[0], average[3], atol=1e-5)  # ψ = 0: the class's average image
