"""Zoo weight files describe themselves; a file that does not match is refused with a clear message."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from modules.errors import BadModelFile
from modules.models.zoo_loader import load_gan, load_latent_model
from modules.zoo.beta_vae import BetaVAE, BetaVAEConfig, save_latent_model
from modules.zoo.gan import GANConfig, Generator, save_gan
from modules.zoo.train.model_info import update_info


@pytest.fixture
def vae_file(tmp_path):
    path = tmp_path / "vae.safetensors"
    save_latent_model(path, BetaVAE(BetaVAEConfig(latent_dim=8, channels=(8, 16))))
    return path


@pytest.fixture
def gan_file(tmp_path):
    path = tmp_path / "gan.safetensors"
    save_gan(path, Generator(GANConfig(z_dim=8, w_dim=16, mapping_layers=1, channels=(8, 8, 8))))
    return path


def rewrite_metadata(path, **changes):
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    metadata.update(changes)
    metadata = {k: v for k, v in metadata.items() if v is not None}
    save_file(load_file(str(path)), str(path), metadata=metadata)


def test_vae_round_trip(vae_file):
    model = load_latent_model(vae_file)
    assert model.latent_dim == 8
    mu, logvar = model.encode(torch.zeros(2, 3, 32, 32))
    assert mu.shape == logvar.shape == (2, 8)
    images = model.decode(mu)
    assert images.shape == (2, 3, 32, 32) and images.abs().max() <= 1


def test_vae_factor_names_are_kept(vae_file):
    update_info(vae_file, {"latent_factors": ["kind", "colour", "", "", "size", "", "", ""]})
    assert load_latent_model(vae_file).latent_factors[4] == "size"


def test_gan_round_trip(gan_file):
    gan = load_gan(gan_file)
    assert (gan.z_dim, gan.num_classes) == (8, 5)
    assert gan.class_names[0] == "circle"
    z = torch.randn(3, 8)
    w = gan.mapping(z, torch.tensor([0, 1, 2]))
    assert gan.synthesis(w).shape == (3, 3, 32, 32)
    assert gan.w_avg.shape == (5, 16)
    images = gan.sample(z, 1, truncation_psi=0.0)
    assert torch.allclose(images[0], images[1], atol=1e-5)  # ψ = 0: every z gives the class's average image


@pytest.mark.parametrize("loader,fixture", [(load_latent_model, "vae_file"), (load_gan, "gan_file")])
def test_rejects_file_without_config(loader, fixture, request):
    path = request.getfixturevalue(fixture)
    rewrite_metadata(path, zoo_config=None)
    with pytest.raises(BadModelFile, match="zoo_config"):
        loader(path)


def test_rejects_the_other_kind(vae_file, gan_file):
    with pytest.raises(BadModelFile, match="not a 'gan' file"):
        load_gan(vae_file)
    with pytest.raises(BadModelFile, match="not a 'beta_vae' file"):
        load_latent_model(gan_file)


def test_rejects_unknown_config_key(vae_file):
    config = {"latent_dim": 8, "channels": [8, 16], "image_size": 32, "beta": 4.0, "depth": 3}
    rewrite_metadata(vae_file, zoo_config=json.dumps(config))
    with pytest.raises(BadModelFile, match="unknown config keys"):
        load_latent_model(vae_file)


def test_rejects_weights_that_do_not_match_the_config(vae_file, gan_file):
    rewrite_metadata(vae_file, zoo_config=json.dumps({"latent_dim": 12, "channels": [8, 16]}))
    with pytest.raises(BadModelFile, match="shape") as error:
        load_latent_model(vae_file)
    assert "vae.safetensors" in str(error.value)
    rewrite_metadata(gan_file, zoo_config=json.dumps({"z_dim": 8, "w_dim": 16, "mapping_layers": 2, "channels": [8, 8, 8]}))
    with pytest.raises(BadModelFile, match="do not match"):
        load_gan(gan_file)


def test_rejects_wrong_types_and_broken_files(vae_file, tmp_path):
    rewrite_metadata(vae_file, zoo_config=json.dumps({"latent_dim": "eight", "channels": [8, 16]}))
    with pytest.raises(BadModelFile, match="latent_dim"):
        load_latent_model(vae_file)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file at all")
    with pytest.raises(BadModelFile, match="not a readable|corrupt file|too short"):
        load_gan(broken)
    with pytest.raises(BadModelFile, match="not found"):
        load_gan(tmp_path / "missing.safetensors")
