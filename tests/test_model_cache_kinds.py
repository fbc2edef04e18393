"""One cache for every weight: checkpoints, β-VAEs, GANs, VAE files and data built from them share one
byte budget and one eviction policy, which can be swapped; nothing in use is evicted; data derived from a
model goes with it; a pipeline's components come from `pipe.components` (an SD3/FLUX `transformer` too)."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import torch

from modules.devices import device_config
from modules.models.cache import ModelCache
from modules.models.refs import BETA_VAE, GAN, VAE_FILE, ModelRef
from tests import tiny_models
from tests.test_latent_fixtures import tiny_sd_vae_file
from tests.test_model_cache import make_backend
from tests.zoo_fixtures import make_tiny_beta_vae, make_tiny_gan


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory):
    """A checkpoint, a β-VAE, two GANs and a VAE file."""
    root = tmp_path_factory.mktemp("every-kind")
    for folder in ("Stable-diffusion", "Latent", "GAN", "VAE"):
        (root / folder).mkdir()
    tiny_models.make_tiny_sd15(root / "Stable-diffusion" / "sd")
    make_tiny_beta_vae(root / "Latent" / "vae.safetensors")
    make_tiny_gan(root / "GAN" / "gan-a.safetensors", seed=1)
    make_tiny_gan(root / "GAN" / "gan-b.safetensors", seed=2)
    tiny_sd_vae_file(root / "VAE" / "file-vae.safetensors")
    return root


def kinds_cached(backend) -> list[tuple[str, str]]:
    """(kind, title without hash), most recently used first, as the Models tab lists them."""
    return [(m["kind"], m["title"].split(" [")[0]) for m in backend.cached_models()]


def test_every_kind_is_listed_and_counted_in_one_budget(every_kind, tmp_path):
    backend = make_backend(every_kind, tmp_path)
    manager = backend.manager
    with manager.use(ModelRef(GAN, "gan-a")) as gan:
        assert gan.info.name == "gan-a.safetensors" and gan.module.num_classes >= 1
    with manager.use(ModelRef(BETA_VAE, "vae")) as vae:
        assert vae.module.latent_dim == 6
    with manager.use(ModelRef(VAE_FILE, "file-vae")) as vae_file:
        assert vae_file.module.config.latent_channels > 0
    manager.load("sd")
    assert kinds_cached(backend) == [("checkpoint", "sd"), ("vae_file", "file-vae.safetensors"),
                                     ("beta_vae", "vae.safetensors"), ("gan", "gan-a.safetensors")]
    totals = backend.cache_totals()
    assert totals["ram_bytes"] == sum(m["bytes"] for m in backend.cached_models())
    with manager.use(ModelRef(GAN, "gan-a")) as again:
        assert again.module is gan.module  # loaded once


def test_the_least_recently_used_entry_makes_room_whatever_its_kind(every_kind, tmp_path):
    backend = make_backend(every_kind, tmp_path)
    manager = backend.manager
    with manager.use(ModelRef(BETA_VAE, "vae")):
        pass
    # Before a load, room is made for the file's size (the module's is not known yet).
    vae_bytes = max(backend.cache_totals()["ram_bytes"], (every_kind / "Latent" / "vae.safetensors").stat().st_size)
    manager.unload_all()
    for name in ("gan-a", "gan-b"):
        with manager.use(ModelRef(GAN, name)):
            pass
    gan_bytes = backend.cache_totals()["ram_bytes"] // 2
    manager.cache.ram_budget = vae_bytes + int(gan_bytes * 1.5)  # room for the β-VAE and one GAN
    with manager.use(ModelRef(BETA_VAE, "vae")):
        pass
    assert [title for _, title in kinds_cached(backend)] == ["vae.safetensors", "gan-b.safetensors"]
    assert backend.cache_totals()["ram_bytes"] <= manager.cache.ram_budget


class LargestFirst:
    """Another policy: the biggest entry goes first, however recently it was used."""

    def victims(self, entries, needed_bytes, budget):
        return sorted(entries, key=lambda entry: -entry.bytes)


def test_a_swapped_in_policy_picks_the_victims(every_kind, tmp_path):
    backend = make_backend(every_kind, tmp_path)
    manager = backend.manager
    manager.cache.policy = LargestFirst()
    with manager.use(ModelRef(GAN, "gan-a")):
        pass
    checkpoint_bytes = manager.load("sd").bytes
    gan_bytes = backend.cache_totals()["ram_bytes"] - checkpoint_bytes
    # Room for the checkpoint and one GAN: the second GAN needs room, and the biggest (the checkpoint,
    # used last) goes rather than the older GAN, as least-recently-used would have picked.
    manager.cache.ram_budget = checkpoint_bytes + int(gan_bytes * 1.5)
    with manager.use(ModelRef(GAN, "gan-b")):
        pass
    assert [title for _, title in kinds_cached(backend)] == ["gan-b.safetensors", "gan-a.safetensors"]


def test_an_entry_in_use_is_never_evicted_and_data_goes_with_its_model(every_kind, tmp_path):
    backend = make_backend(every_kind, tmp_path)
    manager = backend.manager
    builds = []

    def encode():
        builds.append(1)
        return {"mu": torch.zeros(1000, 6).numpy()}

    with manager.use(ModelRef(BETA_VAE, "vae")):
        data = manager.cached_data(("encoded", 1000), encode)
        assert manager.cached_data(("encoded", 1000), encode) is data and len(builds) == 1
        listed = {m["kind"]: m for m in backend.cached_models()}
        assert listed["data"]["bytes"] >= 1000 * 6 * 4 and listed["data"]["architecture"].startswith("from vae")
        manager.cache.make_room(10**15)  # more than any machine has: the model in use stays (its data may go)
        assert [kind for kind, _ in kinds_cached(backend)] == ["beta_vae"]
        assert manager.unload_all() == [listed["beta_vae"]["title"]]
        manager.cached_data(("encoded", 1000), encode)
    assert len(builds) == 2
    assert manager.unload(None) == [] and [kind for kind, _ in kinds_cached(backend)] == ["data", "beta_vae"]
    data_entry = next(e for e in manager.cache.entries.values() if e.kind == "data")
    manager.cache.unload(data_entry.parent)  # the β-VAE only
    assert kinds_cached(backend) == []  # the model went, and its data with it
    with manager.use(ModelRef(BETA_VAE, "vae")):
        manager.cached_data(("encoded", 1000), encode)
    assert len(builds) == 3


def test_zoo_models_do_not_wait_for_the_device(every_kind, tmp_path):
    manager = make_backend(every_kind, tmp_path).manager
    with manager.device_lock:  # a long Stable Diffusion job holds the device
        done = threading.Event()

        def browse():
            with manager.use(ModelRef(GAN, "gan-a")):
                done.set()

        threading.Thread(target=browse, daemon=True).start()
        assert done.wait(60), "a GAN waited in the device's line"


class FakePipe:
    """A pipeline as diffusers describes it: `components` lists every part, here an SD3/FLUX-like transformer."""

    def __init__(self):
        self.transformer = torch.nn.Linear(64, 64)
        self.vae = torch.nn.Linear(8, 8)
        self.scheduler = object()
        self.tokenizer = object()

    @property
    def components(self):
        return {"transformer": self.transformer, "vae": self.vae, "scheduler": self.scheduler,
                "tokenizer": self.tokenizer}


def test_a_transformer_counts_against_the_budget_and_moves_to_the_device():
    cache = ModelCache(device_config("cpu"), ram_budget=10**9, vram_budget=10**9)
    cache.force_device_level = True
    pipe = FakePipe()
    info = SimpleNamespace(title="flux-like", architecture=SimpleNamespace(label="FLUX"))
    model = cache.add("flux", info, pipe, {}, 0.0, {"transformer": "t", "vae": "v"})
    assert sorted(model.components) == ["transformer", "vae"]
    transformer_bytes = (64 * 64 + 64) * 4
    assert model.components["transformer"].bytes == transformer_bytes
    assert cache.ram_bytes == transformer_bytes + (8 * 8 + 8) * 4
    host = pipe.transformer.weight.data_ptr()
    cache.place_on_device(model)
    assert model.components["transformer"].on_device and pipe.transformer.weight.data_ptr() != host
    assert cache.device_bytes == cache.ram_bytes


def test_the_listing_shows_each_component_with_its_dtype_device_and_bytes():
    """The Models tab and /zoo/v1/models/cached: a transformer is listed by its pipeline name, as it is counted."""
    cache = ModelCache(device_config("cpu"), ram_budget=10**9, vram_budget=None)
    pipe = FakePipe()
    pipe.transformer.to(torch.float16)
    info = SimpleNamespace(title="flux-like", architecture=SimpleNamespace(label="FLUX"))
    cache.add("flux", info, pipe, {}, 0.0, {"transformer": "t", "vae": "v"})
    [row] = cache.listing()
    parts = {c["name"]: c for c in row["components"]}
    assert parts["transformer"] == {"name": "transformer", "dtype": "float16", "device": "cpu",
                                    "bytes": (64 * 64 + 64) * 2, "shared": False}
    assert parts["vae"]["dtype"] == "float32" and sum(c["bytes"] for c in parts.values()) == row["bytes"]


def test_the_denoiser_a_family_names_is_keyed_by_its_checkpoint(every_kind, tmp_path):
    """The family's denoiser (a transformer for SD3/FLUX) is the part keyed by the file's hash, not hashed."""
    backend = make_backend(every_kind, tmp_path)
    module = torch.nn.Linear(4, 4)
    family = SimpleNamespace(denoiser="transformer")
    info = SimpleNamespace(sha256="ab" * 32, architecture=SimpleNamespace(spec=family))
    assert backend.manager._component_hash(info, "transformer", module) == f"transformer-of:{'ab' * 32}:torch.float32"
    assert not backend.manager._component_hash(info, "unet", module).startswith("unet-of:")
