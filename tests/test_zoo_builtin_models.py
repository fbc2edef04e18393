"""The shipped β-VAE and GAN load through their validating loaders and do their job."""
import numpy as np
import pytest
import torch

from modules.paths import MODELS_DIR
from modules.zoo import shapes
from modules.zoo.gan import CONDITIONS
from tests.test_zoo_builtin_txt2img import dominant_foreground_colour

VAE_FILE = MODELS_DIR / "Latent" / "shapes-beta-vae.safetensors"
GAN_FILE = MODELS_DIR / "GAN" / "shapes-gan.safetensors"


def test_builtin_beta_vae_reconstructs_shapes():
    if not VAE_FILE.exists():
        pytest.skip(f"built-in β-VAE is not shipped yet ({VAE_FILE} missing)")
    from modules.models.zoo_loader import load_latent_model
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
    from modules.models.zoo_loader import load_gan
    gan = load_gan(GAN_FILE)
    assert gan.class_names == list(CONDITIONS["colour-kind"]) and gan.num_classes == 40
    z = torch.randn(4, gan.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = gan.sample(z, 0, truncation_psi=1.0)
        average = gan.sample(z, 0, truncation_psi=0.0)
        again = gan.sample(z, 0, truncation_psi=1.0)
    assert images.shape == (4, 3, 32, 32) and images.abs().max() <= 1
    assert torch.equal(images, again)  # same z, same image
    assert (images[0] - images[1]).abs().mean() > 0.01  # different z, different image
    assert torch.allclose(average[0], average[3], atol=1e-5)  # ψ = 0: the class's average image


def test_builtin_gan_draws_the_class_colour():
    """For every class and seeds 0-3, the shape's colour (told apart from the background, which z
    picks) is the class's. A crude pixel rule, so 90 % must agree; the classifier in zoo_eval says 99 %."""
    if not GAN_FILE.exists():
        pytest.skip(f"built-in GAN is not shipped yet ({GAN_FILE} missing)")
    from modules.models.zoo_loader import load_gan
    gan = load_gan(GAN_FILE)
    z = torch.randn(4, gan.z_dim, generator=torch.Generator().manual_seed(0))
    agree = []
    for index, class_name in enumerate(gan.class_names):
        with torch.no_grad():
            images = ((gan.sample(z, index, 1.0) + 1) * 127.5).permute(0, 2, 3, 1).numpy()
        for image in images:
            border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
            background = min(shapes.BACKGROUNDS,
                             key=lambda b: np.abs(np.median(border, 0) - shapes.BACKGROUNDS[b]).sum())
            try:
                agree.append(dominant_foreground_colour(image, background) == class_name.split()[0])
            except AssertionError:  # no foreground drawn
                agree.append(False)
    assert np.mean(agree) >= 0.9, f"{np.mean(agree):.0%} of images show their class's colour"
