"""models/Latent and models/GAN are scanned by header; the manager loads each zoo model once."""
from __future__ import annotations

import pytest

from modules.errors import BadModelFile, ModelNotFound
from modules.models.hashing import HashCache
from modules.models.refs import BETA_VAE, GAN, ModelRef
from modules.models.zoo_registry import ZooRegistry
from tests.zoo_fixtures import make_tiny_beta_vae, make_tiny_gan


@pytest.fixture
def zoo_dir(tmp_path):
    (tmp_path / "Latent").mkdir()
    (tmp_path / "GAN").mkdir()
    make_tiny_beta_vae(tmp_path / "Latent" / "vae.safetensors")
    make_tiny_gan(tmp_path / "GAN" / "gan.safetensors")
    make_tiny_gan(tmp_path / "Latent" / "misplaced-gan.safetensors")
    (tmp_path / "GAN" / "broken.safetensors").write_bytes(b"garbage")
    return tmp_path


def test_scan_finds_each_kind_and_explains_the_rest(zoo_dir, tmp_path):
    registry = ZooRegistry(zoo_dir, HashCache(tmp_path / "h.json"))
    registry.scan()
    assert [m.name for m in registry.usable("beta_vae")] == ["vae.safetensors"]
    assert [m.name for m in registry.usable("gan")] == ["gan.safetensors"]
    errors = {m.name: m.error for m in registry.models if not m.usable}
    assert "not a beta_vae file for models/Latent" in errors["misplaced-gan.safetensors"]
    assert "too short" in errors["broken.safetensors"]
    assert registry.find("gan", None).name == "gan.safetensors"
    assert registry.find("beta_vae", "vae").title.startswith("vae.safetensors [")
    with pytest.raises(BadModelFile, match="misplaced-gan.safetensors"):
        registry.find("beta_vae", "misplaced-gan")
    with pytest.raises(ModelNotFound, match="unknown gan model 'nope'"):
        registry.find("gan", "nope")


def test_manager_loads_a_zoo_model_once(zoo_dir, tmp_path):
    from modules.backend import Backend, BackendConfig
    from modules.devices import device_config

    backend = Backend(BackendConfig(models_dir=zoo_dir, outdir=tmp_path / "o", cache_dir=tmp_path / "c",
                                    devices=device_config("cpu")))
    with backend.manager.use(ModelRef(BETA_VAE)) as first:
        vae = first.module
    with backend.manager.use(ModelRef(BETA_VAE, "vae")) as again:
        assert again.module is vae and vae.latent_dim == 6
    with backend.manager.use(ModelRef(GAN)) as gan:
        assert gan.info.name == "gan.safetensors" and gan.module.num_classes >= 5
